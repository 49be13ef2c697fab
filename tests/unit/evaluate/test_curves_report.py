"""What the report draws but a run may not have saved: ROC band, calibration by group, proportional bias."""

import numpy as np
import pytest
from scipy import stats

from aiecg.evaluate.calibration import calibration_intercept, calibration_slope
from aiecg.evaluate.curves import (
    calibration_by_group,
    median_beat_groups,
    proportional_bias,
    roc_band,
    roc_points,
    wilson_interval,
)


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(np.array([0, 5, 10]), np.array([10, 10, 10]))
    # Brown, Cai & DasGupta 2001: Wilson interval for 0/10 is (0, 0.278), 5/10 is (0.237, 0.763)
    assert low[0] == pytest.approx(0.0, abs=1e-12) and high[0] == pytest.approx(0.2775, abs=1e-3)
    assert low[1] == pytest.approx(0.2366, abs=1e-3) and high[1] == pytest.approx(0.7634, abs=1e-3)
    assert high[2] == pytest.approx(1.0)


def test_calibration_by_group_bins_within_each_group_and_fits_slope_and_intercept():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.02, 0.98, 400)
    labels = (rng.random(400) < probs).astype(float)
    sex = rng.integers(0, 2, 400)
    table = calibration_by_group(labels, probs, {"all": np.ones(400, bool), "men": sex == 1}, n_bins=5)
    assert list(table["group"].unique()) == ["all", "men"]
    men = table[table["group"] == "men"]
    assert men["n"].sum() == (sex == 1).sum() and len(men) == 5
    assert men["slope"].iloc[0] == pytest.approx(calibration_slope(labels[sex == 1], probs[sex == 1]))
    assert men["intercept"].iloc[0] == pytest.approx(calibration_intercept(labels[sex == 1], probs[sex == 1]))
    assert ((table["low"] <= table["observed"]) & (table["observed"] <= table["high"])).all()
    one_class = calibration_by_group(np.zeros(20), probs[:20], {"all": np.ones(20, bool)}, n_bins=3)
    assert one_class.empty  # not estimable: no curve rather than a wrong one


def test_proportional_bias_is_the_regression_of_difference_on_mean():
    rng = np.random.default_rng(1)
    truth = rng.normal(60, 10, 200)
    pred = 0.5 * truth + 30 + rng.normal(0, 2, 200)  # regression to the mean: a proportional bias
    fit = proportional_bias(truth, pred)
    reference = stats.linregress((truth + pred) / 2, pred - truth)
    assert fit["slope"] == pytest.approx(reference.slope) and fit["p"] == pytest.approx(reference.pvalue)
    assert fit["slope_low"] < fit["slope"] < fit["slope_high"] < 0 and fit["n"] == 200
    assert proportional_bias(truth[:2], pred[:2]) == {"status": "not_estimable", "n": 2, "reason": (
        "2 participant(s) with both a measured and a predicted value; the regression of the difference on the mean "
        "needs at least 3")}  # a reason, never NaN numbers


def test_roc_band_contains_the_curve_and_is_seeded():
    rng = np.random.default_rng(2)
    labels = (rng.random(120) < 0.3).astype(float)
    scores = labels + rng.normal(0, 1, 120)
    band = roc_band(labels, scores, n_resamples=50, seed=3)
    assert list(band.columns) == ["fpr", "tpr_low", "tpr_high"] and len(band) == 101
    assert (band["tpr_low"] <= band["tpr_high"]).all()
    curve = roc_points(labels, scores)  # the empirical ROC, vertically averaged onto the band's grid as it is
    tpr = np.interp(band["fpr"], curve["fpr"], curve["tpr"])
    inside = (band["tpr_low"] - 1e-12 <= tpr) & (tpr <= band["tpr_high"] + 1e-12)
    assert inside.mean() >= 0.9, band[~inside]  # a pointwise 95% band: the curve lies inside almost everywhere
    assert (band["tpr_high"] - band["tpr_low"]).iloc[:80].min() > 0.05  # a band, not a line on the curve
    assert band.equals(roc_band(labels, scores, n_resamples=50, seed=3))


def test_median_beat_groups_compare_lvh_and_the_fifths_of_the_prediction():
    rng = np.random.default_rng(3)
    beats = rng.normal(size=(20, 2, 5))
    lvh = np.array([1.0] * 5 + [0.0] * 15)
    prediction = np.arange(20, dtype=float)
    panels = median_beat_groups(beats, lvh, prediction, "ilvm_pred")
    assert [p["name"] for p in panels] == ["lvh", "predicted"]
    lvh_curve, no_curve = panels[0]["curves"]
    np.testing.assert_allclose(lvh_curve["mean"], beats[:5].mean(axis=0))
    np.testing.assert_allclose(no_curve["sd"], beats[5:].std(axis=0, ddof=1))
    high, low = panels[1]["curves"]
    assert high["n"] == low["n"] == 4 and high["label"].startswith("highest fifth")
    np.testing.assert_allclose(low["mean"], beats[:4].mean(axis=0))
    assert median_beat_groups(beats, np.zeros(20), None) == []  # one class, no prediction: nothing to compare
