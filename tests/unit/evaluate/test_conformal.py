"""Split-conformal intervals: the order statistic, coverage on exchangeable data, the report, the round trip."""

import math

import numpy as np
import pandas as pd
import pytest

from aiecg.data.targets import target_spec
from aiecg.evaluate.conformal import ConformalIntervals, coverage_report, fit_conformal


def test_quantile_is_the_ceil_n_plus_1_level_order_statistic():
    conformal = fit_conformal(np.arange(1, 20, dtype=float)[:, None], np.zeros((19, 1)), ["MASS"])
    # n = 19: the 90% interval uses the ceil(20 * 0.9) = 18th smallest residual
    assert conformal.quantile("MASS", 0.9) == 18.0
    assert conformal.quantile("MASS", 0.5) == 10.0
    assert conformal.quantile("MASS", 0.96) == math.inf  # ceil(20 * 0.96) = 20 > n: infinite, as the method says
    with pytest.raises(ValueError):
        conformal.quantile("MASS", 1.0)
    lower, upper = conformal.intervals(np.array([[100.0]]), ["MASS"], 0.9)
    assert lower[0, 0] == 82.0 and upper[0, 0] == 118.0


def test_rows_without_a_true_value_are_skipped_and_the_round_trip_is_exact():
    y_true = np.array([[1.0, 2.0], [np.nan, 5.0], [4.0, 1.0]])
    y_pred = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    conformal = fit_conformal(y_true, y_pred, ["INDEXED_MASS", "INDEXED_VOL"])
    assert conformal.residuals["INDEXED_MASS"].tolist() == [1.0, 4.0]
    assert conformal.residuals["INDEXED_VOL"].tolist() == [2.0, 2.0, 5.0]
    again = ConformalIntervals.from_dict(conformal.to_dict())
    assert {k: v.tolist() for k, v in again.residuals.items()} == {k: v.tolist() for k, v in
                                                                   conformal.residuals.items()}
    assert ConformalIntervals.from_dict(None) is None


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_coverage_on_exchangeable_data_is_near_the_level(level):
    rng = np.random.default_rng(0)
    truth = rng.normal(60, 10, 21000)
    pred = truth + rng.standard_t(4, truth.size) * 5  # heavy-tailed errors: no normality assumed
    conformal = fit_conformal(truth[:1000, None], pred[:1000, None], ["INDEXED_MASS"])
    table = pd.DataFrame({"ilvm_true": truth[1000:], "ilvm_pred": pred[1000:],
                          "is_m": rng.integers(0, 2, 20000)})
    report = coverage_report(conformal, target_spec("INDEXED_MASS"), table, levels=(level,))
    entry = report["ilvm"]["levels"][f"{level:g}"]
    # marginal guarantee: level <= E[coverage] <= level + 1/(n+1); 20,000 test rows: SE about 0.002
    assert abs(entry["overall"]["coverage"] - level) < 0.015
    assert entry["overall"]["n"] == 20000 and entry["male"]["n"] + entry["female"]["n"] == 20000
    assert entry["overall"]["mean_width"] == pytest.approx(2 * conformal.quantile("INDEXED_MASS", level))
    half = conformal.quantile("INDEXED_MASS", level)
    male = table["is_m"] == 1
    expected = np.mean(np.abs(table.loc[male, "ilvm_true"] - table.loc[male, "ilvm_pred"]) <= half)
    assert entry["male"]["coverage"] == pytest.approx(expected)


def _two_sexes(rng, n):
    """Men predicted twice as badly as women (a pooled quantile then under-covers men, over-covers women)."""
    is_m = rng.integers(0, 2, n)
    truth = rng.normal(50, 8, n)
    pred = truth + rng.normal(0, np.where(is_m == 1, 8.0, 4.0))
    return truth, pred, is_m


def test_mondrian_intervals_cover_the_level_within_each_sex():
    rng = np.random.default_rng(1)
    truth, pred, is_m = _two_sexes(rng, 42000)
    cal, test = slice(0, 2000), slice(2000, None)
    table = pd.DataFrame({"ilvm_true": truth[test], "ilvm_pred": pred[test], "is_m": is_m[test]})
    pooled = fit_conformal(truth[cal, None], pred[cal, None], ["INDEXED_MASS"])
    mondrian = fit_conformal(truth[cal, None], pred[cal, None], ["INDEXED_MASS"], is_male=is_m[cal])
    before = coverage_report(pooled, target_spec("INDEXED_MASS"), table, levels=(0.9,))["ilvm"]["levels"]["0.9"]
    after = coverage_report(mondrian, target_spec("INDEXED_MASS"), table, levels=(0.9,))["ilvm"]["levels"]["0.9"]
    assert before["male"]["coverage"] < 0.84 and before["female"]["coverage"] > 0.96  # marginal only
    for sex in ("male", "female", "overall"):
        assert abs(after[sex]["coverage"] - 0.9) < 0.015, sex
    assert after["male"]["mean_width"] > 1.8 * after["female"]["mean_width"]
    # each sex's half-width is the order statistic of its own calibration scores
    men = np.sort(np.abs(truth[cal] - pred[cal])[is_m[cal] == 1])
    assert mondrian.quantile("INDEXED_MASS", 0.9, "male") == men[math.ceil((men.size + 1) * 0.9) - 1]


def test_unknown_sex_and_old_bundles_get_the_pooled_interval():
    rng = np.random.default_rng(2)
    truth, pred, is_m = _two_sexes(rng, 400)
    mondrian = fit_conformal(truth[:, None], pred[:, None], ["INDEXED_MASS"], is_male=is_m)
    pooled_half = mondrian.quantile("INDEXED_MASS", 0.9)
    lower, upper = mondrian.intervals(np.zeros((3, 1)), ["INDEXED_MASS"], 0.9, np.array([1.0, 0.0, np.nan]))
    assert upper[0, 0] == mondrian.quantile("INDEXED_MASS", 0.9, "male")
    assert upper[1, 0] == mondrian.quantile("INDEXED_MASS", 0.9, "female")
    assert upper[2, 0] == pooled_half and lower[2, 0] == -pooled_half
    again = ConformalIntervals.from_dict(mondrian.to_dict())
    assert again.method == mondrian.method and "Mondrian" in again.method
    assert again.quantile("INDEXED_MASS", 0.9, "female") == mondrian.quantile("INDEXED_MASS", 0.9, "female")
    old = {k: v for k, v in mondrian.to_dict().items() if k != "groups"}  # a bundle saved before issue 12's fix
    legacy = ConformalIntervals.from_dict(old)
    assert legacy.quantile("INDEXED_MASS", 0.9, "male") == pooled_half and "Mondrian" not in legacy.method
