"""Decision curves (Vickers & Elkin 2006) checked against net benefits worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from aiecg.evaluate.bootstrap import bootstrap_band
from aiecg.evaluate.decision import (
    THRESHOLDS,
    decision_curves,
    net_benefit,
    net_benefit_curve,
    treatment_levels,
)

# 10 participants, 3 with LVH. Model probabilities: the cases at 0.9, 0.6, 0.2; controls at 0.7, 0.3, 0.1 x5.
LABELS = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
PROBS = np.array([0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1])
CALLS = np.array([1, 0, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float)  # TP 2, FP 2


def test_net_benefit_by_hand():
    # pt 0.25 (odds 1/3): treated 0.9, 0.6, 0.7, 0.3 -> TP 2, FP 2: 2/10 - 2/10 * 1/3
    assert net_benefit(LABELS, PROBS >= 0.25, 0.25) == pytest.approx(0.2 - 0.2 / 3)
    # pt 0.5 (odds 1): treated 0.9, 0.6, 0.7 -> TP 2, FP 1: 0.2 - 0.1
    assert net_benefit(LABELS, PROBS >= 0.5, 0.5) == pytest.approx(0.1)
    # pt 0.8 (odds 4): treated 0.9 only -> TP 1, FP 0
    assert net_benefit(LABELS, PROBS >= 0.8, 0.8) == pytest.approx(0.1)


def test_treat_all_is_prevalence_minus_weighted_complement():
    table = decision_curves(LABELS, {"model": PROBS}, {}, n_resamples=50, seed=0)
    everyone = table[table.strategy == "treat all"].set_index("threshold")["net_benefit"]
    pt = THRESHOLDS
    expected = 0.3 - 0.7 * pt / (1 - pt)
    np.testing.assert_allclose(everyone.to_numpy(), expected, atol=1e-12)
    assert everyone.loc[0.3] == pytest.approx(0.0)  # pt = prevalence: treat-all breaks even
    assert everyone.loc[0.1] == pytest.approx(0.3 - 0.7 / 9)
    nobody = table[table.strategy == "treat none"]
    assert np.all(nobody.net_benefit == 0) and np.all(nobody.low == 0) and np.all(nobody.high == 0)


def test_model_curve_matches_the_formula_at_every_threshold():
    table = decision_curves(LABELS, {"model": PROBS}, {}, n_resamples=50, seed=0)
    model = table[table.strategy == "model"].set_index("threshold")["net_benefit"]
    for pt in THRESHOLDS:
        assert model.loc[pt] == pytest.approx(net_benefit(LABELS, PROBS >= pt, pt), abs=1e-12), pt
    # between 0.3 (exclusive) and 0.6 (inclusive) three are treated: TP 2 (0.9, 0.6), FP 1 (0.7)
    assert model.loc[0.45] == pytest.approx(0.2 - 0.1 * 0.45 / 0.55)
    # a threshold equal to a score treats that participant (score >= pt)
    assert model.loc[0.6] == pytest.approx(0.2 - 0.1 * 1.5)
    assert model.loc[0.61] == pytest.approx(0.1 - 0.1 * 0.61 / 0.39)


def test_a_binary_rule_is_a_line_in_the_threshold_odds():
    table = decision_curves(LABELS, {"model": PROBS}, {"Sokolow-Lyon": CALLS}, n_resamples=50, seed=0)
    rule = table[table.strategy == "Sokolow-Lyon"]
    assert set(rule.kind) == {"criterion"}
    odds = rule.threshold / (1 - rule.threshold)
    np.testing.assert_allclose(rule.net_benefit, 0.2 - 0.2 * odds, atol=1e-12)  # TP 2/10, FP 2/10
    assert rule.set_index("threshold").net_benefit.loc[0.5] == pytest.approx(0.0)


def test_unknown_calls_leave_their_participants_out_of_that_row_only():
    calls = CALLS.copy()
    calls[[0, 9]] = np.nan  # a true positive and a true negative unknown: 8 left, TP 1, FP 2
    table = decision_curves(LABELS, {"model": PROBS}, {"rule": calls}, n_resamples=20, seed=0)
    rule = table[table.strategy == "rule"]
    assert set(rule.n) == {8} and set(rule.events) == {2}
    at = rule.set_index("threshold").net_benefit
    assert at.loc[0.2] == pytest.approx(1 / 8 - 2 / 8 * 0.25)
    assert set(table[table.strategy == "treat all"].n) == {10}


def test_levels_and_the_vectorised_curve_agree_with_direct_counting():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.2).astype(float)
    p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.15, 300), 0, 1)
    curve = net_benefit_curve(y, treatment_levels(p, THRESHOLDS), n_resamples=10, seed=1)
    direct = [net_benefit(y, p >= pt, pt) for pt in THRESHOLDS]
    np.testing.assert_allclose(curve.net_benefit, direct, atol=1e-12)


def test_the_band_is_the_bootstrap_of_the_point_estimate():
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.25).astype(float)
    p = np.clip(0.25 + 0.4 * (y - 0.25) + rng.normal(0, 0.15, 400), 0.001, 0.999)
    table = decision_curves(y, {"model": p}, {}, n_resamples=400, seed=7)
    model = table[table.strategy == "model"].set_index("threshold")
    # the band contains the estimate and is a real interval where people are treated
    inside = (model.low <= model.net_benefit + 1e-12) & (model.net_benefit <= model.high + 1e-12)
    assert inside.all()
    assert (model.high - model.low).loc[0.2] > 0.01
    # treat-all at pt: its band is prevalence's percentile interval mapped through the line
    everyone = table[table.strategy == "treat all"].set_index("threshold")
    odds = 0.2 / 0.8
    prev = bootstrap_band(lambda a, axis=-1: np.mean(a, axis=axis)[:, None], y, n_resamples=400, seed=7)
    low = prev.low[0] - (1 - prev.low[0]) * odds
    high = prev.high[0] - (1 - prev.high[0]) * odds
    assert everyone.low.loc[0.2] == pytest.approx(low, abs=1e-9)
    assert everyone.high.loc[0.2] == pytest.approx(high, abs=1e-9)
    # same seed, same numbers
    again = decision_curves(y, {"model": p}, {}, n_resamples=400, seed=7)
    pd.testing.assert_frame_equal(table, again)


def test_refuses_what_is_not_a_probability_or_a_label():
    with pytest.raises(ValueError, match="probabilities"):
        decision_curves(LABELS, {"svm": PROBS * 3}, {}, n_resamples=5, seed=0)
    with pytest.raises(ValueError, match="0 or 1"):
        decision_curves(LABELS * 2, {"model": PROBS}, {}, n_resamples=5, seed=0)
    with pytest.raises(ValueError, match="inside"):
        net_benefit(LABELS, PROBS > 0.5, 1.0)
