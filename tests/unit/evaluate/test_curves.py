"""The curves saved for the report, on small arrays with known answers."""

import numpy as np
import pandas as pd
import pytest

from aiecg.evaluate import curves


def test_roc_points_keep_scored_rows_with_a_label_and_end_at_the_corners():
    labels = np.array([0, 0, 1, 1, np.nan, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.9, np.nan])
    points = curves.roc_points(labels, scores)
    assert points[["fpr", "tpr"]].iloc[-1].tolist() == [1.0, 1.0] and points["fpr"].iloc[0] == 0
    assert curves.roc_points(np.array([1, 1, 0]), np.array([0.2, 0.5, np.nan])) is None  # one class left


def test_the_roc_band_holds_the_curve_of_a_separable_score():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    scores = labels + rng.normal(0, 0.3, labels.size)
    band = curves.roc_band(labels, scores, n_resamples=50, seed=1)
    assert len(band) == len(curves.ROC_GRID) and (band["tpr_low"] <= band["tpr_high"]).all()
    assert band["tpr_high"].iloc[-1] == 1 and band["tpr_low"].iloc[50] > 0.7


def test_quantile_bins_average_prediction_and_truth_per_equal_count_bin():
    bins = curves.quantile_bins(np.array([0, 0, 1, 1, 1, 0]), np.array([0.1, 0.2, 0.9, 0.8, 0.7, np.nan]), 2)
    assert bins["n"].tolist() == [3, 2]
    assert bins["mean_predicted"].tolist() == pytest.approx([(0.1 + 0.2 + 0.7) / 3, 0.85])
    assert bins["mean_observed"].tolist() == pytest.approx([1 / 3, 1.0])


def test_the_lr_curve_crosses_the_threshold_at_the_saved_cut_off():
    lr = {"intercept": -10.0, "coef_sex": 1.0, "coef_value": 0.1}
    cut = curves.lr_cutoffs(lr, 0.5, {0: 95.0, 1: 115.0}).set_index("is_m")
    assert cut.loc[0, "learned_cutoff"] == pytest.approx(100.0) and cut.loc[1, "learned_cutoff"] == pytest.approx(90.0)
    assert cut.loc[1, "guideline_cutoff"] == 115.0
    line = curves.lr_curve(lr, np.array([80.0, 120.0]), n_points=5)
    women = line[line["is_m"] == 0].set_index("value")["lvh_proba"]
    assert women.loc[100.0] == pytest.approx(0.5) and len(line) == 10
    assert np.isnan(curves.lr_cutoffs(lr, None, None)["learned_cutoff"]).all()


def test_calibration_curves_cover_every_saved_probability():
    table = pd.DataFrame({"lvh_true": np.tile([0, 1], 30), "lvh_proba_lr": np.linspace(0, 1, 60),
                          "lvh_proba_prioradj_lr": np.linspace(0, 0.5, 60)})
    frame = curves.probability_calibration(table)
    assert set(frame["probability"]) == {"lvh_proba_lr", "lvh_proba_prioradj_lr"}
    assert frame.groupby("probability")["n"].sum().tolist() == [60, 60] and frame["bin"].max() == 3
    assert curves.probability_calibration(table.assign(lvh_true=1)) is None


def test_the_pr_curve_at_the_sample_prevalence_is_sklearns_and_re_weighting_follows_bayes():
    from sklearn.metrics import average_precision_score, precision_recall_curve

    rng = np.random.default_rng(4)
    labels = (rng.random(150) < 0.4).astype(float)
    scores = np.round(labels + rng.normal(0, 1, 150), 1)  # ties, as real scores have
    points = curves.pr_points(labels, scores)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    expected = pd.DataFrame({"recall": recall[:-1], "precision": precision[:-1], "threshold": thresholds})
    merged = points.merge(expected, on="threshold", suffixes=("", "_sk"))
    assert len(merged) == len(points) == len(thresholds)
    np.testing.assert_allclose(merged["precision"], merged["precision_sk"])
    np.testing.assert_allclose(merged["recall"], merged["recall_sk"])
    # drawn as a step back to the previous recall, the curve encloses the average precision
    area = np.sum(np.diff(np.r_[0.0, points["recall"]]) * points["precision"])
    assert area == pytest.approx(average_precision_score(labels, scores))
    target = curves.pr_points(labels, scores, prevalence=0.1)
    sens = points["recall"].to_numpy()
    fpr = (points["threshold"].to_numpy()[:, None] <= scores[labels == 0][None, :]).mean(axis=1)
    np.testing.assert_allclose(target["precision"], sens * 0.1 / (sens * 0.1 + fpr * 0.9))
    assert (target["precision"] < points["precision"] + 1e-12).all()  # a rarer outcome: lower precision
    assert curves.pr_points(np.ones(5), np.arange(5.0)) is None


def test_the_pr_band_holds_the_curve_at_both_prevalences_and_is_seeded():
    rng = np.random.default_rng(5)
    labels = (rng.random(200) < 0.3).astype(float)
    scores = labels + rng.normal(0, 1, 200)
    bands = curves.pr_bands(labels, scores, target_prevalence=0.05, n_resamples=60, seed=2)
    assert set(bands["weighting"]) == {"sample", "target"} and len(bands) == 2 * len(curves.RECALL_GRID)
    assert bands.equals(curves.pr_bands(labels, scores, target_prevalence=0.05, n_resamples=60, seed=2))
    for weighting, prevalence in (("sample", None), ("target", 0.05)):
        band = bands[bands["weighting"] == weighting]
        curve = curves.pr_points(labels, scores, prevalence)
        at = curve["precision"].to_numpy()[np.minimum(np.searchsorted(curve["recall"], band["recall"]),
                                                      len(curve) - 1)]
        inside = (band["precision_low"] - 1e-12 <= at) & (at <= band["precision_high"] + 1e-12)
        assert inside.mean() >= 0.9 and (band["precision_high"] - band["precision_low"]).iloc[20:95].min() > 0.01
    target = bands[bands["weighting"] == "target"]
    assert target["prevalence"].iloc[0] == 0.05 and target["precision_high"].iloc[50] < 0.5


def test_one_roc_and_pr_table_for_the_model_and_the_criteria():
    labels = np.array([0, 1, 0, 1, 1, 0, np.nan, 0])
    model = np.array([0.1, 0.9, 0.3, 0.7, 0.6, 0.2, 0.5, 0.65])
    criterion = np.array([-1.0, 0.5, np.nan, 0.2, -0.3, -0.5, 0.1, 0.3])
    rows = [("lvh_proba", "model", model), ("Cornell", "criterion", criterion),
            ("flat", "criterion", np.full(8, np.nan))]
    roc = curves.roc_table(labels, rows)
    assert list(roc.columns) == ["curve", "kind", "fpr", "tpr", "threshold"] and set(roc["curve"]) == {"lvh_proba",
                                                                                                      "Cornell"}
    cornell = roc[roc["curve"] == "Cornell"]
    assert cornell[["fpr", "tpr"]].equals(curves.roc_points(labels, criterion)[["fpr", "tpr"]].set_index(cornell.index))
    pr = curves.pr_table(labels, rows, target_prevalence=0.2)
    assert set(pr["weighting"]) == {"sample", "target"} and set(pr["curve"]) == {"lvh_proba", "Cornell"}
    assert pr.loc[pr["weighting"] == "sample", "prevalence"].iloc[0] == pytest.approx(3 / 7)
    assert curves.pr_table(labels, rows)["weighting"].eq("sample").all()
    assert curves.roc_table(labels, rows[2:]) is None and curves.pr_table(labels, rows[2:]) is None
