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
