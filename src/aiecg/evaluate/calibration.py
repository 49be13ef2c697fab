"""Calibration metrics, thresholds and recalibration models, as pure functions and plain-number dataclasses.

Everything fitted here (thresholds, logistic and linear recalibration coefficients) is meant to be fitted on
the validation split and then applied unchanged to the test split or an external cohort; the fitted objects
are plain numbers (``to_dict``/``from_dict``) so they travel in a model bundle without pickle.

Functions that take an ``axis`` keyword reduce along it and accept blocks of bootstrap resamples ``[b, n]``
(see :mod:`aiecg.evaluate.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special
from sklearn.metrics import roc_curve

# probabilities are clipped to [EPS, 1 - EPS] before the logit, so a model that outputs exactly 0 or 1 gives a
# large finite logit (about +-20.7) instead of an infinite one
EPS = 1e-9


def _float(a: object) -> np.ndarray:
    return np.asarray(a, dtype=float)


def logit(p: object) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [EPS, 1 - EPS]."""
    return special.logit(np.clip(_float(p), EPS, 1 - EPS))


def _check_probabilities(p: np.ndarray) -> None:
    finite = p[np.isfinite(p)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"probabilities must lie in [0, 1], got values in [{finite.min()}, {finite.max()}]")


def brier_score(labels: object, probs: object, axis: int = -1) -> np.ndarray | float:
    """Mean squared difference between the predicted probability and the 0/1 outcome (Brier 1950)."""
    y, p = _float(labels), _float(probs)
    _check_probabilities(p)
    return np.mean((p - y) ** 2, axis=axis)


def _solve_each(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a[k] s[k] = b[k] for every k; NaN for a singular a[k] (e.g. fitted probabilities all 0 or 1)."""
    try:
        return np.linalg.solve(a, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        out = np.full(b.shape, np.nan)
        for k in range(len(a)):
            try:
                out[k] = np.linalg.solve(a[k], b[k])
            except np.linalg.LinAlgError:
                pass
        return out


def _fit_logistic_batch(
    x: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None, l2: float = 0.0, max_iter: int = 100,
    tol: float = 1e-10, start: np.ndarray | None = None,
) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton-Raphson on a batch of data sets.

    Args:
        x: design ``[..., n, p]`` (include a column of ones for an intercept, placed first).
        y: outcomes ``[..., n]``.
        offset: a fixed term added to the linear predictor ``[..., n]``.
        l2: ridge penalty ``l2 / 2 * |w|^2`` on every coefficient but the first (the intercept).
        start: initial coefficients ``[p]`` (zeros by default).

    Returns:
        Coefficients ``[..., p]``; NaN for a data set that did not converge within ``max_iter`` Newton steps:
        one class only, or (quasi-)complete separation, where the estimate does not exist (it diverges).
    """
    x, y = _float(x), _float(y)
    batch, (n, p) = x.shape[:-2], x.shape[-2:]
    x = x.reshape(-1, n, p)
    y = np.broadcast_to(y, batch + (n,)).reshape(-1, n)
    offset = np.zeros_like(y) if offset is None else np.broadcast_to(_float(offset), batch + (n,)).reshape(-1, n)
    ridge = np.diag(np.r_[0.0, np.full(p - 1, float(l2))])
    w = np.full((len(x), p), np.nan)
    # with one class only the maximum-likelihood estimate is at infinity: fail at once rather than iterate
    rows = np.flatnonzero(np.ptp(y, axis=1) > 0) if n else np.arange(0)
    xa, ya, oa = x[rows], y[rows], offset[rows]
    wa = np.zeros((len(rows), p)) if start is None else np.tile(_float(start), (len(rows), 1))
    for _ in range(max_iter):
        if len(rows) == 0:
            break
        mu = special.expit((xa @ wa[:, :, None])[:, :, 0] + oa)
        xt = np.swapaxes(xa, 1, 2)
        grad = (xt @ (ya - mu)[:, :, None])[:, :, 0] - wa @ ridge
        hess = (xt * (mu * (1 - mu))[:, None, :]) @ xa + ridge
        step = _solve_each(hess, grad)
        wa = wa + step
        finite = np.all(np.isfinite(wa), axis=1)
        finished = finite & np.all(np.abs(step) <= tol * (1 + np.abs(wa)), axis=1)
        w[rows[finished]] = wa[finished]
        going = finite & ~finished
        if not going.all():  # keep iterating on the data sets still moving only
            rows, xa, ya, oa, wa = rows[going], xa[going], ya[going], oa[going], wa[going]
    return w.reshape(batch + (p,))


def calibration_slope(labels: object, probs: object, axis: int = -1) -> np.ndarray | float:
    """Calibration slope: b in the logistic recalibration logit P(y=1) = a + b logit(p) (Cox 1958).

    1 is ideal; below 1 the predictions are too extreme (overfitting), above 1 too modest. NaN when the fit does
    not converge (one class, separation).
    """
    y, p = np.moveaxis(_float(labels), axis, -1), np.moveaxis(_float(probs), axis, -1)
    _check_probabilities(p)
    lp = logit(p)
    x = np.stack([np.ones_like(lp), lp], axis=-1)
    # start at perfect calibration, (a, b) = (0, 1), a few Newton steps from most models' fit
    return _fit_logistic_batch(x, np.broadcast_to(y, lp.shape), start=np.array([0.0, 1.0]))[..., 1]


def calibration_intercept(labels: object, probs: object, axis: int = -1) -> np.ndarray | float:
    """Calibration intercept (calibration-in-the-large): a in logit P(y=1) = a + logit(p), slope fixed at 1.

    Fitted with logit(p) as an offset (Van Calster B et al. A calibration hierarchy for risk models was defined:
    from utopia to empirical data. J Clin Epidemiol 2016;74:167-176). 0 is ideal; above 0 the model
    under-predicts risk on average, below 0 it over-predicts. This is not the intercept of the two-parameter
    recalibration fitted for :func:`calibration_slope`, whose value depends on the slope.
    """
    y, p = np.moveaxis(_float(labels), axis, -1), np.moveaxis(_float(probs), axis, -1)
    _check_probabilities(p)
    lp = logit(p)
    return _fit_logistic_batch(np.ones(lp.shape + (1,)), np.broadcast_to(y, lp.shape), offset=lp)[..., 0]


def expected_calibration_error(labels: object, probs: object, n_bins: int = 10, axis: int = -1) -> np.ndarray | float:
    """Expected calibration error over equal-width probability bins.

    ECE = sum_k (n_k / n) |mean(y in bin k) - mean(p in bin k)|, bins [k/B, (k+1)/B) with the last one closed
    (Naeini MP, Cooper GF, Hauskrecht M. Obtaining well calibrated probabilities using Bayesian binning.
    AAAI 2015). Empty bins contribute nothing.
    """
    y, p = np.moveaxis(_float(labels), axis, -1), np.moveaxis(_float(probs), axis, -1)
    _check_probabilities(p)
    y = np.broadcast_to(y, p.shape)
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    lead = p.shape[:-1]
    rows = np.arange(int(np.prod(lead, dtype=int))).reshape(lead + (1,)) if lead else np.zeros(1, dtype=int)
    flat = (rows * n_bins + bins).ravel()
    size = (int(np.prod(lead, dtype=int)) if lead else 1) * n_bins
    sum_y = np.bincount(flat, weights=y.ravel(), minlength=size).reshape(lead + (n_bins,))
    sum_p = np.bincount(flat, weights=p.ravel(), minlength=size).reshape(lead + (n_bins,))
    ece = np.sum(np.abs(sum_y - sum_p), axis=-1) / p.shape[-1]
    return float(ece) if not lead else ece


def youden_threshold(labels: object, scores: object) -> float:
    """The score cut-off that maximises Youden's J = sensitivity + specificity - 1 (Youden 1950).

    Calls are ``scores >= threshold``. Fit it on the validation split and apply it to the test split; choosing it
    on the test split biases every threshold-dependent metric upwards. Among equally good cut-offs the highest
    is returned (the first point of the ROC curve reaching the maximum).
    """
    y, s = _float(labels).ravel(), _float(scores).ravel()
    keep = np.isfinite(y) & np.isfinite(s)
    y, s = y[keep], s[keep]
    if len(np.unique(y)) < 2:
        raise ValueError("youden_threshold needs both classes in the labels")
    fpr, tpr, thresholds = roc_curve(y.astype(int), s, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    return float(thresholds[int(np.argmax(j))])


@dataclass(frozen=True)
class SexLogisticModel:
    """Logistic regression P(LVH) = expit(intercept + coef_sex * sex + coef_value * value), sex 1 = male.

    The reference code's "LR" pipeline: a predicted value (indexed LV mass, or a probability) plus sex turned
    into an LVH probability, fitted on the validation split. Plain coefficients, no pickle.
    """

    intercept: float
    coef_sex: float
    coef_value: float

    def decision_function(self, sex: object, value: object) -> np.ndarray:
        return self.intercept + self.coef_sex * _float(sex) + self.coef_value * _float(value)

    def predict_proba(self, sex: object, value: object) -> np.ndarray:
        """P(LVH) per participant (a 1-D array, not sklearn's two columns)."""
        return special.expit(self.decision_function(sex, value))

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> SexLogisticModel:
        return cls(float(values["intercept"]), float(values["coef_sex"]), float(values["coef_value"]))


def fit_sex_logistic(sex: object, value: object, labels: object, l2: float = 0.0) -> SexLogisticModel:
    """Fit :class:`SexLogisticModel` by maximum likelihood (Newton-Raphson).

    Args:
        sex: 1 male, 0 female.
        value: the model's prediction per participant.
        labels: 0/1 LVH.
        l2: ridge penalty on the two slopes, ``l2 / 2 * |w|^2``; ``l2 = 1 / C`` reproduces scikit-learn's
            ``LogisticRegression(C=C)`` on the raw features, ``0`` (default) the unpenalised fit.
    """
    sx, v, y = (_float(a).ravel() for a in (sex, value, labels))
    keep = np.isfinite(sx) & np.isfinite(v) & np.isfinite(y)
    sx, v, y = sx[keep], v[keep], y[keep]
    if len(np.unique(y)) < 2:
        raise ValueError("fit_sex_logistic needs both classes in the labels")
    # centring the value keeps Newton well conditioned for values in the hundreds; undone below
    centre = float(np.mean(v))
    w = _fit_logistic_batch(np.stack([np.ones_like(v), sx, v - centre], axis=-1), y, l2=l2)
    if not np.all(np.isfinite(w)):
        raise ValueError("logistic fit did not converge (are the classes separated by sex and value?)")
    return SexLogisticModel(float(w[0] - w[2] * centre), float(w[1]), float(w[2]))


def prior_shift(probs: object, train_prevalence: float, target_prevalence: float) -> np.ndarray:
    """Adjust probabilities for a new outcome prevalence (prior-probability shift).

    p' = p pi1'/pi1 / (p pi1'/pi1 + (1 - p) pi0'/pi0), with pi the training and pi' the target prevalence
    (Saerens M, Latinne P, Decaestecker C. Adjusting the outputs of a classifier to new a priori
    probabilities: a simple procedure. Neural Comput 2002;14:21-41). Assumes P(x | y) is unchanged.
    """
    for name, value in (("train_prevalence", train_prevalence), ("target_prevalence", target_prevalence)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    p = _float(probs)
    _check_probabilities(p)
    pos = p * target_prevalence / train_prevalence
    neg = (1 - p) * (1 - target_prevalence) / (1 - train_prevalence)
    return pos / (pos + neg)


def estimate_prevalence_em(probs: object, train_prevalence: float, max_iter: int = 1000, tol: float = 1e-10) -> float:
    """Estimate the outcome prevalence of an unlabelled cohort by the EM procedure of Saerens et al. (2002).

    Alternates :func:`prior_shift` of the probabilities to the current prevalence and re-estimating the
    prevalence as their mean, from the training prevalence, until it changes by less than ``tol``.
    """
    p = _float(probs).ravel()
    p = p[np.isfinite(p)]
    prevalence = float(train_prevalence)
    for _ in range(max_iter):
        updated = float(np.mean(prior_shift(p, train_prevalence, prevalence)))
        updated = min(max(updated, EPS), 1 - EPS)
        if abs(updated - prevalence) < tol:
            return updated
        prevalence = updated
    return prevalence


@dataclass(frozen=True)
class LinearRecalibration:
    """Linear recalibration of a predicted value: truth ~ intercept + coef_sex sex + coef_prediction prediction
    (+ coef_interaction sex * prediction), sex 1 = male. Fitted on validation data; plain coefficients."""

    intercept: float
    coef_sex: float
    coef_prediction: float
    coef_interaction: float = 0.0

    def apply(self, sex: object, prediction: object) -> np.ndarray:
        """The recalibrated prediction."""
        sx, pr = _float(sex), _float(prediction)
        return self.intercept + self.coef_sex * sx + self.coef_prediction * pr + self.coef_interaction * sx * pr

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> LinearRecalibration:
        return cls(float(values["intercept"]), float(values["coef_sex"]), float(values["coef_prediction"]),
                   float(values.get("coef_interaction", 0.0)))


def fit_linear_recalibration(
    sex: object, prediction: object, truth: object, interaction: bool = False
) -> LinearRecalibration:
    """Ordinary least squares of the true value on sex and the prediction (and their product if asked)."""
    sx, pr, y = (_float(a).ravel() for a in (sex, prediction, truth))
    keep = np.isfinite(sx) & np.isfinite(pr) & np.isfinite(y)
    sx, pr, y = sx[keep], pr[keep], y[keep]
    columns = [np.ones_like(pr), sx, pr] + ([sx * pr] if interaction else [])
    x = np.stack(columns, axis=1)
    if len(y) < x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("linear recalibration needs both sexes and varying predictions (design is rank deficient)")
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    return LinearRecalibration(float(coef[0]), float(coef[1]), float(coef[2]),
                               float(coef[3]) if interaction else 0.0)
