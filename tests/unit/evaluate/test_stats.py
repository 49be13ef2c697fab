import json

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from sklearn.linear_model import LinearRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from aiecg.evaluate.calibration import calibration_intercept, calibration_slope, expected_calibration_error
from aiecg.evaluate.stats import (
    average_precision,
    classification_report,
    regression_report,
    spearman_r,
    subgroup_reports,
    tertile_cut_points,
)

METRIC_KEYS = {"estimate", "low", "high"}


def regression_data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = rng.normal(70, 15, n)
    return y, 0.8 * y + 16 + rng.normal(0, 8, n)


def classification_data(seed=0, n=600):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.15).astype(int)
    scores = np.round(special.expit(rng.normal(-2.0, 1.0, n) + 1.6 * labels), 2)
    return labels, scores


def test_spearman_and_average_precision_match_scipy_and_sklearn_with_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, size=(4, 50)).astype(float)
    y = x + rng.integers(0, 3, size=(4, 50))
    np.testing.assert_allclose(spearman_r(x, y), [stats.spearmanr(x[k], y[k]).statistic for k in range(4)])
    labels = rng.integers(0, 2, size=(4, 50))
    expected = [average_precision_score(labels[k], x[k]) for k in range(4)]
    np.testing.assert_allclose(average_precision(labels, x), expected, rtol=1e-12)


def test_regression_report_estimates_match_independent_formulas():
    y, p = regression_data()
    p[3] = np.nan
    report = regression_report(y, p, seed=0, n_resamples=300)
    keep = np.isfinite(p)
    y, p = y[keep], p[keep]
    point = {"mae": np.mean(np.abs(p - y)), "bias": np.mean(p - y), "pearson_r": stats.pearsonr(y, p)[0],
             "spearman_r": stats.spearmanr(y, p)[0]}
    assert report["n"] == len(y)
    for name in ("mae", "bias", "pearson_r", "spearman_r"):
        assert report[name]["estimate"] == pytest.approx(point[name], rel=1e-12)
    n = len(y)
    r2 = LinearRegression().fit(p[:, None], y).score(p[:, None], y)
    assert report["adjusted_squared_correlation"]["estimate"] == pytest.approx(1 - (1 - r2) * (n - 1) / (n - 2),
                                                                               rel=1e-10)
    assert report["r2"]["estimate"] == pytest.approx(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))
    d = p - y
    assert report["loa_lower"]["estimate"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert report["loa_upper"]["estimate"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
    for name in ("mae", "bias", "pearson_r", "spearman_r", "r2", "adjusted_squared_correlation", "loa_lower",
                 "loa_upper"):
        assert set(report[name]) == METRIC_KEYS
        assert report[name]["low"] < report[name]["estimate"] < report[name]["high"]
    assert "failed_resamples" not in report
    json.dumps(report, allow_nan=False)


def test_reports_are_reproducible_and_seed_dependent():
    y, p = regression_data(2, n=150)
    assert regression_report(y, p, seed=3, n_resamples=200) == regression_report(y, p, seed=3, n_resamples=200)
    assert regression_report(y, p, seed=3, n_resamples=200) != regression_report(y, p, seed=4, n_resamples=200)


def test_classification_report_estimates_match_independent_implementations():
    labels, scores = classification_data()
    report = classification_report(labels, scores, 0.2, seed=0, n_resamples=300)
    predicted = (scores >= 0.2).astype(int)
    calls = {"sensitivity": recall_score(labels, predicted), "specificity": recall_score(1 - labels, 1 - predicted),
             "ppv": precision_score(labels, predicted), "npv": precision_score(1 - labels, 1 - predicted),
             "f1": f1_score(labels, predicted)}
    assert report["n"] == len(labels) and report["positives"] == int(labels.sum()) and report["threshold"] == 0.2
    assert report["auroc"]["estimate"] == pytest.approx(roc_auc_score(labels, scores))
    assert report["auprc"]["estimate"] == pytest.approx(average_precision_score(labels, scores))
    for name in ("sensitivity", "specificity", "ppv", "npv", "f1"):
        assert report[name]["estimate"] == pytest.approx(calls[name])
    assert report["brier"]["estimate"] == pytest.approx(brier_score_loss(labels, scores))
    assert report["calibration_slope"]["estimate"] == pytest.approx(calibration_slope(labels, scores))
    assert report["calibration_intercept"]["estimate"] == pytest.approx(calibration_intercept(labels, scores))
    assert report["ece"]["estimate"] == pytest.approx(expected_calibration_error(labels, scores))
    for name in ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "f1", "brier", "calibration_slope",
                 "calibration_intercept", "ece"):
        assert set(report[name]) == METRIC_KEYS
        assert report[name]["low"] <= report[name]["estimate"] <= report[name]["high"], name
    assert report["bootstrap"]["stratified"] is True
    json.dumps(report, allow_nan=False)


def test_classification_report_without_probabilities_skips_calibration():
    labels, scores = classification_data(1)
    report = classification_report(labels, 100 * scores, 20.0, seed=0, n_resamples=100)
    assert "brier" not in report and "ece" not in report and "calibration_slope" not in report
    assert report["auroc"]["estimate"] == pytest.approx(roc_auc_score(labels, scores))


def test_classification_report_on_a_tiny_group_counts_failed_resamples():
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.3, 0.4, 0.1, 0.2, 0.15, 0.05, 0.6])
    report = classification_report(labels, scores, 0.5, seed=0, n_resamples=200)
    assert report["failed_resamples"]["ppv"] > 0  # resamples with no positive call have no PPV
    assert np.isfinite(report["ppv"]["low"])
    single = classification_report(np.zeros(5), np.linspace(0.1, 0.5, 5), 0.5, seed=0, n_resamples=50)
    assert np.isnan(single["auroc"]["estimate"]) and np.isnan(single["sensitivity"]["estimate"])


def subgroup_frame(seed=0, n=600):
    rng = np.random.default_rng(seed)
    y, p = regression_data(seed, n)
    frame = pd.DataFrame({"is_m": rng.integers(0, 2, n), "age": rng.uniform(40, 80, n), "bmi": rng.normal(27, 4, n),
                          "ilvm_true": y, "ilvm_pred": p})
    frame.loc[5, "bmi"] = np.nan
    frame["lvh_true"] = (frame["ilvm_true"] > 85).astype(int)
    return frame


def test_subgroup_reports_by_sex_and_tertiles():
    frame = subgroup_frame()
    out = subgroup_reports(frame, "regression", "ilvm_true", "ilvm_pred", seed=0, n_resamples=100)
    assert out["cut_points"]["age"] == pytest.approx(list(np.quantile(frame["age"], [1 / 3, 2 / 3])))
    assert out["cut_points"]["bmi"] == pytest.approx(list(tertile_cut_points(frame["bmi"])))
    assert set(out["subgroups"]["is_m"]) == {"0", "1"}
    assert sum(r["n"] for r in out["subgroups"]["is_m"].values()) == len(frame)
    assert sum(r["n"] for r in out["subgroups"]["age"].values()) == len(frame)
    assert sum(r["n"] for r in out["subgroups"]["bmi"].values()) == len(frame) - 1  # the missing BMI
    male = frame[frame["is_m"] == 1]
    assert out["subgroups"]["is_m"]["1"]["mae"]["estimate"] == pytest.approx(
        np.mean(np.abs(male["ilvm_pred"] - male["ilvm_true"])))
    assert out["overall"]["n"] == len(frame)
    json.dumps(out, allow_nan=False)
    female = frame[frame["is_m"] == 0]  # each grouping's interaction test: Kruskal-Wallis on the absolute errors
    expected = stats.kruskal(np.abs(female["ilvm_pred"] - female["ilvm_true"]), np.abs(male["ilvm_pred"] -
                                                                                       male["ilvm_true"]))
    assert out["interaction"]["is_m"]["p"] == pytest.approx(expected.pvalue) and out["interaction"]["age"]["df"] == 2
    assert set(out["interaction"]) == {"is_m", "age", "bmi"}

    fixed = subgroup_reports(frame, "classification", "lvh_true", "ilvm_pred", seed=0, n_resamples=50, threshold=85.0,
                             group_columns=(), tertile_columns=("age",), cut_points={"age": [50.0, 60.0]})
    assert fixed["cut_points"] == {"age": [50.0, 60.0]}
    assert fixed["subgroups"]["age"]["T1"]["n"] == int(np.sum(frame["age"] <= 50))
    interaction = fixed["interaction"]["age"]  # discrimination compared between the age groups (DeLong, Wald)
    assert interaction["df"] == 2 and "DeLong" in interaction["method"] and 0 <= interaction["p"] <= 1
    assert interaction["aurocs"]["T1"] == pytest.approx(fixed["subgroups"]["age"]["T1"]["auroc"]["estimate"])
    with pytest.raises(ValueError, match="threshold"):
        subgroup_reports(frame, "classification", "lvh_true", "ilvm_pred", seed=0)
    with pytest.raises(KeyError, match="height"):
        subgroup_reports(frame, "regression", "ilvm_true", "ilvm_pred", seed=0, tertile_columns=("height",))
