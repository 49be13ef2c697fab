import json

import numpy as np
import pytest
from scipy import optimize, special
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_curve

from aiecg.evaluate.calibration import (
    LinearRecalibration,
    SexLogisticModel,
    brier_score,
    calibration_intercept,
    calibration_slope,
    estimate_prevalence_em,
    expected_calibration_error,
    fit_linear_recalibration,
    fit_sex_logistic,
    logit,
    prior_shift,
    youden_threshold,
)


def simulated(seed, n=4000, a=0.0, b=1.0):
    """Predicted probabilities p and outcomes drawn from expit(a + b logit p): slope b, intercept a."""
    rng = np.random.default_rng(seed)
    p = special.expit(rng.normal(-1.5, 1.2, n))
    y = (rng.random(n) < special.expit(a + b * special.logit(p))).astype(int)
    return y, p


def test_brier_score_by_hand_and_against_sklearn():
    y, p = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.0])
    assert brier_score(y, p) == pytest.approx((0.01 + 0.04 + 0.36 + 0.0) / 4)
    y, p = simulated(0)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p))
    with pytest.raises(ValueError, match="probabilities"):
        brier_score([0, 1], [0.5, 1.5])


def test_calibration_slope_equals_unpenalised_logistic_regression():
    y, p = simulated(1, b=0.6)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit(p)[:, None], y)
    assert calibration_slope(y, p) == pytest.approx(reference.coef_[0, 0], rel=1e-6)
    assert calibration_slope(y, p) == pytest.approx(0.6, abs=0.12)


def test_calibration_intercept_solves_the_offset_score_equation():
    y, p = simulated(2, a=0.5)
    a = calibration_intercept(y, p)
    root = optimize.brentq(lambda c: np.sum(y - special.expit(c + logit(p))), -5, 5, xtol=1e-14)
    assert a == pytest.approx(root, abs=1e-9)
    assert a == pytest.approx(0.5, abs=0.12)


def test_perfectly_calibrated_predictions():
    y, p = simulated(3, n=20_000)
    assert calibration_slope(y, p) == pytest.approx(1.0, abs=0.06)
    assert calibration_intercept(y, p) == pytest.approx(0.0, abs=0.05)
    assert expected_calibration_error(y, p) < 0.02


def test_calibration_fits_on_blocks_equal_row_by_row_and_fail_as_nan():
    y, p = simulated(4, n=300)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 300, size=(5, 300))
    block_y, block_p = y[idx], p[idx]
    for f in (calibration_slope, calibration_intercept, expected_calibration_error, brier_score):
        rows = [f(block_y[k], block_p[k]) for k in range(5)]
        np.testing.assert_allclose(f(block_y, block_p, axis=-1), rows, rtol=1e-9)
    separated_y, separated_p = np.array([0, 0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    assert np.isnan(calibration_slope(separated_y, separated_p))
    assert np.isnan(calibration_intercept(np.zeros(5), np.full(5, 0.3)))


def test_expected_calibration_error_by_hand():
    # bins of width 0.1: {0.05, 0.05} -> mean p 0.05, mean y 0.5; {0.95} -> p 0.95, y 1; {1.0} joins the last bin
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 1.0])
    expected = 2 / 4 * abs(0.5 - 0.05) + 2 / 4 * abs(1.0 - 0.975)
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(0.75 - p.mean()))


def test_youden_threshold_maximises_j_by_brute_force():
    y, p = simulated(5, n=500)
    t = youden_threshold(y, p)
    best = max(np.mean(p[y == 1] >= c) + np.mean(p[y == 0] < c) - 1 for c in np.unique(p))
    assert np.mean(p[y == 1] >= t) + np.mean(p[y == 0] < t) - 1 == pytest.approx(best)
    fpr, tpr, thresholds = roc_curve(y, p)
    assert t in thresholds and np.isfinite(t)
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8  # J = 1/2 at 0.8 and at 0.35: the higher
    with pytest.raises(ValueError, match="both classes"):
        youden_threshold([1, 1], [0.2, 0.3])


def test_sex_logistic_model_matches_sklearn_and_round_trips():
    rng = np.random.default_rng(6)
    n = 3000
    sex = rng.integers(0, 2, n)
    value = rng.normal(70, 15, n) + 8 * sex
    y = (rng.random(n) < special.expit(-14 + 0.18 * value - 1.0 * sex)).astype(int)
    model = fit_sex_logistic(sex, value, y)
    x = np.column_stack([sex, value])
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=100_000).fit(x, y)
    assert (model.coef_sex, model.coef_value) == pytest.approx(tuple(reference.coef_[0]), rel=1e-5)
    assert model.intercept == pytest.approx(reference.intercept_[0], rel=1e-5)
    np.testing.assert_allclose(model.predict_proba(sex, value), reference.predict_proba(x)[:, 1], rtol=1e-5)
    penalised = fit_sex_logistic(sex, value, y, l2=1.0)
    default_sklearn = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x, y)  # C = 1
    assert (penalised.coef_sex, penalised.coef_value) == pytest.approx(tuple(default_sklearn.coef_[0]), rel=1e-4)
    restored = SexLogisticModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored == model


def test_prior_shift_formula_and_identity():
    p = np.array([0.1, 0.5, 0.9])
    shifted = prior_shift(p, 0.2, 0.05)
    odds = p / (1 - p) * (0.05 / 0.95) / (0.2 / 0.8)  # Bayes: posterior odds scale with the prior odds
    np.testing.assert_allclose(shifted, odds / (1 + odds))
    np.testing.assert_allclose(prior_shift(p, 0.3, 0.3), p)
    with pytest.raises(ValueError, match="target_prevalence"):
        prior_shift(p, 0.3, 0.0)


def test_prior_shift_recovers_true_posteriors_and_em_finds_the_prevalence():
    # x | y ~ N(y, 1); the classifier is Bayes-optimal at prevalence 0.3, the new cohort has prevalence 0.08
    rng = np.random.default_rng(7)
    n = 50_000
    y = (rng.random(n) < 0.08).astype(int)
    x = rng.normal(y, 1.0)
    likelihood_ratio = np.exp(x - 0.5)

    def posterior(prevalence):
        odds = likelihood_ratio * prevalence / (1 - prevalence)
        return odds / (1 + odds)

    np.testing.assert_allclose(prior_shift(posterior(0.3), 0.3, 0.08), posterior(0.08), rtol=1e-10)
    assert estimate_prevalence_em(posterior(0.3), 0.3) == pytest.approx(0.08, abs=0.01)


def test_linear_recalibration_recovers_coefficients_and_round_trips():
    rng = np.random.default_rng(8)
    sex = rng.integers(0, 2, 200)
    pred = rng.normal(70, 10, 200)
    truth = 5 + 3 * sex + 0.9 * pred
    fit = fit_linear_recalibration(sex, pred, truth)
    assert (fit.intercept, fit.coef_sex, fit.coef_prediction, fit.coef_interaction) == pytest.approx((5, 3, 0.9, 0))
    np.testing.assert_allclose(fit.apply(sex, pred), truth)
    truth2 = truth + 0.1 * sex * pred
    fit2 = fit_linear_recalibration(sex, pred, truth2, interaction=True)
    assert fit2.coef_interaction == pytest.approx(0.1)
    assert LinearRecalibration.from_dict(json.loads(json.dumps(fit2.to_dict()))) == fit2
    with pytest.raises(ValueError, match="rank deficient"):
        fit_linear_recalibration(np.ones(10), pred[:10], truth[:10])
