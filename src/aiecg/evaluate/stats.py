"""Metrics with confidence intervals: the reports a paper's tables are built from.

Every metric is ``{"estimate", "low", "high"}`` (plain floats, NaN where undefined), computed with the one
bootstrap of :mod:`aiecg.evaluate.bootstrap` (paired, one integer seed shared by all metrics of a report so
they use the same resamples) or, for AUROC, DeLong's analytic interval. Statistics here take an ``axis`` keyword
and are evaluated on blocks of resamples at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import rankdata

from aiecg.evaluate import calibration
from aiecg.evaluate.bootstrap import Interval, SeedLike, as_generator, bootstrap_ci
from aiecg.evaluate.delong import auroc_heterogeneity, delong_auc_ci

LOA_Z = 1.96  # Bland-Altman limits of agreement: mean difference +- 1.96 SD


# --- regression statistics (prediction minus truth) -----------------------------------------------------------

def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(np.abs(y_pred - y_true), axis=axis)


def mean_error(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    """Bias: mean of prediction minus truth."""
    return np.mean(y_pred - y_true, axis=axis)


def pearson_r(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation along ``axis``; NaN when either variable is constant."""
    xc = x - np.mean(x, axis=axis, keepdims=True)
    yc = y - np.mean(y, axis=axis, keepdims=True)
    denominator = np.sqrt(np.sum(xc * xc, axis=axis) * np.sum(yc * yc, axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sum(xc * yc, axis=axis) / denominator
    return np.where(denominator > 0, np.clip(r, -1.0, 1.0), np.nan)


def spearman_r(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman rank correlation: Pearson r of midranks (``scipy.stats.rankdata``, ties averaged, per row)."""
    return pearson_r(rankdata(x, axis=axis), rankdata(y, axis=axis), axis=axis)


def r_squared(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    """The coefficient of determination R² = 1 - SS_res / SS_tot of predictions against the truth (not a squared
    correlation: a biased or mis-scaled prediction scores below its r², and below 0 when worse than the mean)."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    residual = np.sum((y_true - y_pred) ** 2, axis=axis)
    total = np.sum((y_true - np.mean(y_true, axis=axis, keepdims=True)) ** 2, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1 - residual / total, np.nan)


def adjusted_squared_correlation(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    """Adjusted R^2 of the OLS regression of the truth on the prediction (one predictor plus intercept): the
    squared Pearson correlation, adjusted, 1 - (1 - r^2)(n - 1)/(n - 2). It is what the prediction could explain
    after a linear recalibration, not the prediction's own R^2 (:func:`r_squared`)."""
    n = np.shape(y_true)[axis]
    if n < 3:
        return np.full(np.delete(np.shape(y_true), axis % np.ndim(y_true)), np.nan)
    r = pearson_r(y_true, y_pred, axis=axis)
    return 1 - (1 - r**2) * (n - 1) / (n - 2)


def _limit_of_agreement(sign: float) -> Callable[..., np.ndarray]:
    def limit(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
        d = y_pred - y_true
        return np.mean(d, axis=axis) + sign * LOA_Z * np.std(d, axis=axis, ddof=1)

    return limit


loa_lower = _limit_of_agreement(-1.0)
loa_lower.__doc__ = "Lower Bland-Altman limit of agreement: mean(pred - truth) - 1.96 SD (Bland & Altman 1986)."
loa_upper = _limit_of_agreement(+1.0)
loa_upper.__doc__ = "Upper Bland-Altman limit of agreement: mean(pred - truth) + 1.96 SD (Bland & Altman 1986)."

REGRESSION_STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "mae": mean_absolute_error, "bias": mean_error, "pearson_r": pearson_r, "spearman_r": spearman_r,
    "r2": r_squared, "adjusted_squared_correlation": adjusted_squared_correlation, "loa_lower": loa_lower,
    "loa_upper": loa_upper,
}


# --- classification statistics ------------------------------------------------------------------------------------

def average_precision(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Area under the precision-recall curve as average precision, sum_k (R_k - R_k-1) P_k over distinct
    thresholds (scikit-learn's ``average_precision_score``, ties handled the same way); NaN with no positives."""
    y = np.moveaxis(np.asarray(labels, dtype=float), axis, -1)
    s = np.moveaxis(np.asarray(scores, dtype=float), axis, -1)
    y = np.broadcast_to(y, s.shape)
    order = np.argsort(-s, axis=-1)
    s_sorted = np.take_along_axis(s, order, axis=-1)
    y_sorted = np.take_along_axis(y, order, axis=-1)
    n = s.shape[-1]
    positions = np.arange(n)
    precision = np.cumsum(y_sorted, axis=-1) / (positions + 1)
    # every participant gets the precision at the end of its block of tied scores
    block_end = np.ones(s.shape, dtype=bool)
    block_end[..., :-1] = s_sorted[..., :-1] != s_sorted[..., 1:]
    end = np.minimum.accumulate(np.where(block_end, positions, n)[..., ::-1], axis=-1)[..., ::-1]
    positives = np.sum(y_sorted, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(y_sorted * np.take_along_axis(precision, end, axis=-1), axis=-1) / positives


def _confusion_statistic(name: str, threshold: float) -> Callable[..., np.ndarray]:
    def statistic(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
        y = np.asarray(labels) == 1
        call = np.asarray(scores) >= threshold
        tp = np.sum(y & call, axis=axis)
        fp = np.sum(~y & call, axis=axis)
        fn = np.sum(y & ~call, axis=axis)
        tn = np.sum(~y & ~call, axis=axis)
        numerator, denominator = {
            "sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp),
            "npv": (tn, tn + fn), "f1": (2 * tp, 2 * tp + fp + fn),
        }[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)

    statistic.__name__ = name
    return statistic


THRESHOLD_METRICS = ("sensitivity", "specificity", "ppv", "npv", "f1")
CALIBRATION_STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "brier": calibration.brier_score, "calibration_slope": calibration.calibration_slope,
    "calibration_intercept": calibration.calibration_intercept, "ece": calibration.expected_calibration_error,
}


# --- reports ------------------------------------------------------------------------------------------------------

def _report_seed(seed: SeedLike) -> int:
    """One integer seed for all metrics of a report, so every metric sees the same resamples."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63 - 1))
    as_generator(seed)  # validates
    return int(seed)


def _collect(intervals: Mapping[str, Interval], report: dict[str, object]) -> dict[str, object]:
    failed = {}
    for name, interval in intervals.items():
        report[name] = interval.to_dict()
        if interval.n_failed:
            failed[name] = interval.n_failed
    if failed:
        report["failed_resamples"] = failed
    return report


def _nan_interval(method: str, confidence: float) -> Interval:
    return Interval(float("nan"), float("nan"), float("nan"), 0, method, confidence)


def regression_report(
    y_true: object, y_pred: object, *, seed: SeedLike, n_resamples: int = 2000, method: str = "percentile",
    confidence: float = 0.95,
) -> dict[str, object]:
    """Agreement of a continuous prediction with the truth, each metric with a bootstrap interval.

    Metrics: ``mae``, ``bias`` (mean of prediction minus truth), ``pearson_r``, ``spearman_r``, ``r2`` (the
    coefficient of determination of the prediction itself), ``adjusted_squared_correlation`` (adjusted R^2 of the
    OLS of truth on prediction: what a linear recalibration could reach; formerly ``adj_r2``),
    ``loa_lower``/``loa_upper`` (Bland-Altman limits of agreement, mean difference +-
    1.96 SD of the differences; Bland JM, Altman DG. Statistical methods for assessing agreement between two
    methods of clinical measurement. Lancet 1986;i:307-310). Participants with a non-finite value are dropped.

    Returns:
        ``{"n", metric: {"estimate", "low", "high"}, ..., "bootstrap": {...}}`` and ``failed_resamples`` (metric:
        count) when some resamples gave an undefined statistic.
    """
    yt, yp = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred must have one length, got {yt.shape} and {yp.shape}")
    keep = np.isfinite(yt) & np.isfinite(yp)
    yt, yp = yt[keep], yp[keep]
    base = _report_seed(seed)
    intervals = {}
    for name, statistic in REGRESSION_STATISTICS.items():
        if len(yt) < 3:
            intervals[name] = _nan_interval(method, confidence)
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            intervals[name] = bootstrap_ci(statistic, yt, yp, n_resamples=n_resamples, seed=base, method=method,
                                           confidence=confidence)
    report: dict[str, object] = {"n": int(len(yt))}
    _collect(intervals, report)
    report["bootstrap"] = {"n_resamples": n_resamples, "method": method, "confidence": confidence, "seed": base}
    return report


def classification_report(
    labels: object, scores: object, threshold: float, *, seed: SeedLike, n_resamples: int = 2000,
    method: str = "percentile", confidence: float = 0.95, probabilities: bool | None = None, n_bins: int = 10,
) -> dict[str, object]:
    """Discrimination, threshold metrics and calibration of a score for a binary outcome, with intervals.

    AUROC has DeLong's interval (:func:`aiecg.evaluate.delong.delong_auc_ci`); AUPRC (average precision),
    sensitivity, specificity, PPV, NPV and F1 at ``scores >= threshold``, Brier score, calibration slope and
    intercept and ECE (:mod:`aiecg.evaluate.calibration`) have bootstrap intervals stratified by the outcome (every
    resample keeps the numbers of cases and non-cases).

    Args:
        labels: 0/1 outcome.
        scores: predicted probabilities (or any score when ``probabilities`` is False).
        threshold: the cut-off, chosen on the validation split (e.g. :func:`calibration.youden_threshold`),
            never on the data being evaluated.
        seed: int or Generator; one integer seed is used for every metric.
        probabilities: whether the scores are probabilities; calibration metrics are reported only if so. By
            default, whether all scores lie in [0, 1].

    Returns:
        ``{"n", "positives", "threshold", metric: {"estimate", "low", "high"}, ..., "bootstrap": {...}}``.
    """
    y, s = np.asarray(labels, dtype=float).ravel(), np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have one length, got {y.shape} and {s.shape}")
    keep = np.isfinite(y) & np.isfinite(s)
    y, s = y[keep], s[keep]
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0/1")
    if probabilities is None:
        probabilities = bool(len(s) == 0 or (s.min() >= 0 and s.max() <= 1))
    positives, negatives = int(np.sum(y == 1)), int(np.sum(y == 0))
    base = _report_seed(seed)

    statistics: dict[str, Callable[..., np.ndarray]] = {"auprc": average_precision}
    statistics.update({name: _confusion_statistic(name, threshold) for name in THRESHOLD_METRICS})
    if probabilities:
        statistics.update(CALIBRATION_STATISTICS)
        if n_bins != 10:
            def ece(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
                return calibration.expected_calibration_error(labels, scores, n_bins=n_bins, axis=axis)

            statistics["ece"] = ece

    intervals: dict[str, Interval] = {}
    if positives >= 2 and negatives >= 2:
        intervals["auroc"] = delong_auc_ci(y, s, confidence)
    else:
        intervals["auroc"] = _nan_interval("delong", confidence)
    for name, statistic in statistics.items():
        if len(y) == 0:
            intervals[name] = _nan_interval(method, confidence)
            continue
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            intervals[name] = bootstrap_ci(statistic, y, s, n_resamples=n_resamples, seed=base, stratify=y,
                                           method=method, confidence=confidence)
    report: dict[str, object] = {"n": int(len(y)), "positives": positives, "threshold": float(threshold)}
    _collect(intervals, report)
    report["bootstrap"] = {"n_resamples": n_resamples, "method": method, "confidence": confidence, "seed": base,
                           "stratified": True}
    return report


def tertile_cut_points(values: object) -> tuple[float, float]:
    """The 1/3 and 2/3 quantiles of the finite values (numpy's default linear interpolation)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        raise ValueError("tertile cut-points need at least one finite value")
    low, high = np.quantile(v, [1 / 3, 2 / 3])
    return float(low), float(high)


def tertile_masks(values: object, cut_points: Sequence[float]) -> dict[str, np.ndarray]:
    """Masks of the tertiles T1: x <= c1, T2: c1 < x <= c2, T3: x > c2 (NaN in none)."""
    v = np.asarray(values, dtype=float)
    c1, c2 = (float(c) for c in cut_points)
    return {"T1": v <= c1, "T2": (v > c1) & (v <= c2), "T3": v > c2}


def subgroup_reports(
    frame: pd.DataFrame,
    kind: str,
    true_column: str,
    pred_column: str,
    *,
    seed: SeedLike,
    group_columns: Sequence[str] = ("is_m",),
    tertile_columns: Sequence[str] = ("age", "bmi"),
    cut_points: Mapping[str, Sequence[float]] | None = None,
    threshold: float | None = None,
    n_resamples: int = 2000,
    method: str = "percentile",
    confidence: float = 0.95,
) -> dict[str, object]:
    """A report for all participants and for each subgroup: by value of each group column (sex: ``is_m``) and
    by tertile of each tertile column (age, BMI).

    Tertile cut-points are ``cut_points[column]`` when given (e.g. those of the development cohort, so every
    cohort is split at the same ages), else the 1/3 and 2/3 quantiles of the column in ``frame``
    (:func:`tertile_cut_points`); T1 is x <= c1, T2 c1 < x <= c2, T3 x > c2. Participants with a missing group
    value are left out of that grouping only. The cut-points used are returned.

    Args:
        frame: one row per participant (e.g. the results table joined with age and BMI).
        kind: ``regression`` (:func:`regression_report`) or ``classification`` (:func:`classification_report`,
            needs ``threshold``).
        true_column, pred_column: the truth (value or 0/1 label) and the prediction (value or score).
        seed: int or Generator; every subgroup uses the same integer seed.

    Returns:
        ``{"overall": report, "cut_points": {column: [c1, c2]}, "subgroups": {column: {level: report}},
        "interaction": {column: test}}``; a level's report is keyed ``"<value>"`` for group columns and
        ``T1``-``T3`` for tertiles; each column's test of a difference between its levels is
        :func:`subgroup_difference`.
    """
    if kind not in ("regression", "classification"):
        raise ValueError(f"kind must be 'regression' or 'classification', got {kind!r}")
    if kind == "classification" and threshold is None:
        raise ValueError("classification subgroups need the threshold chosen on the validation split")
    missing = [c for c in (true_column, pred_column, *group_columns, *tertile_columns) if c not in frame.columns]
    if missing:
        raise KeyError(f"subgroup_reports: columns {missing} are not in the frame (it has {list(frame.columns)})")
    base = _report_seed(seed)

    def report(mask: np.ndarray) -> dict[str, object]:
        part = frame.loc[mask]
        if kind == "regression":
            return regression_report(part[true_column].to_numpy(), part[pred_column].to_numpy(), seed=base,
                                     n_resamples=n_resamples, method=method, confidence=confidence)
        return classification_report(part[true_column].to_numpy(), part[pred_column].to_numpy(), threshold,
                                     seed=base, n_resamples=n_resamples, method=method, confidence=confidence)

    masks: dict[str, dict[str, np.ndarray]] = {}
    for column in group_columns:
        values = frame[column]
        masks[column] = {str(level): (values == level).to_numpy() for level in sorted(values.dropna().unique())}
    used_cuts: dict[str, list[float]] = {}
    for column in tertile_columns:
        values = frame[column].to_numpy(dtype=float)
        cuts = cut_points[column] if cut_points and column in cut_points else tertile_cut_points(values)
        used_cuts[column] = [float(c) for c in cuts]
        masks[column] = tertile_masks(values, cuts)
    subgroups = {column: {level: report(mask) for level, mask in levels.items()} for column, levels in masks.items()}
    truth, prediction = frame[true_column].to_numpy(dtype=float), frame[pred_column].to_numpy(dtype=float)
    interaction = {column: subgroup_difference(kind, truth, prediction, levels) for column, levels in masks.items()}
    return {"overall": report(np.ones(len(frame), dtype=bool)), "cut_points": used_cuts, "subgroups": subgroups,
            "interaction": interaction}


def subgroup_difference(kind: str, truth: np.ndarray, prediction: np.ndarray,
                        levels: Mapping[str, np.ndarray]) -> dict[str, object]:
    """Whether the model performs differently between the levels of one subgrouping (an interaction test).

    Classification: the AUROCs of the levels compared by a Wald test with DeLong variances
    (:func:`aiecg.evaluate.delong.auroc_heterogeneity`). Regression: the absolute errors of the levels compared by
    the Kruskal-Wallis test (Kruskal WH, Wallis WA. J Am Stat Assoc 1952;47:583-621), a rank test of whether one
    level's errors tend to be larger. Returns method, statistic, df and p (NaN, with a ``note``, where undefined).
    """
    if kind == "classification":
        return auroc_heterogeneity({level: (truth[mask], prediction[mask]) for level, mask in levels.items()})
    errors = {level: np.abs(prediction[mask] - truth[mask]) for level, mask in levels.items()}
    errors = {level: e[np.isfinite(e)] for level, e in errors.items()}
    used = {level: e for level, e in errors.items() if len(e)}
    out: dict[str, object] = {"method": "Kruskal-Wallis test of the absolute errors across subgroups",
                              "statistic": float("nan"), "df": max(len(used) - 1, 0), "p": float("nan"),
                              "left_out": [level for level in errors if level not in used]}
    if len(used) < 2 or np.ptp(np.concatenate(list(used.values()))) == 0:
        out["note"] = "fewer than two subgroups with errors, or all errors equal"
        return out
    test = stats.kruskal(*used.values())
    out.update(statistic=float(test.statistic), p=float(test.pvalue))
    return out
