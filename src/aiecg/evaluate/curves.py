"""The curves a report draws, computed once at evaluation time from the results table: ROC and precision-recall
curves (the latter at the sample's prevalence and re-weighted to a target prevalence) with the model's pointwise
bootstrap bands, calibration in quantile bins (LVH probabilities, overall and by sex with Wilson
intervals, and continuous predictions), the proportional bias of a continuous prediction, and the logistic model
on sex and prediction with the cut-offs it implies.

Each function takes arrays or frames and returns a long-format frame that :mod:`aiecg.workflows.evaluate` saves
under the names in ``docs/architecture.md``; the report only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from aiecg.evaluate.bootstrap import as_generator, resample_indices
from aiecg.evaluate.calibration import SexLogisticModel, logit

ROC_GRID = np.linspace(0, 1, 101)
"""1 - specificity values at which the ROC band is given."""
ROC_BAND_RESAMPLES = 200
RECALL_GRID = np.linspace(0, 1, 101)
"""Recall (sensitivity) values at which the precision-recall band is given."""
PROBABILITY_COLUMNS = ("lvh_proba", "lvh_proba_prioradj", "lvh_proba_lr", "lvh_proba_prioradj_lr")
"""Results columns holding LVH probabilities (calibration curves are drawn for those present)."""


def roc_points(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame | None:
    """The empirical ROC curve (``fpr, tpr, threshold``) over the rows with a 0/1 label and a finite score;
    None when those hold fewer than two classes."""
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    keep = np.isfinite(scores) & np.isin(labels, (0, 1))
    if len(np.unique(labels[keep])) < 2:
        return None
    fpr, tpr, thresholds = roc_curve(labels[keep], scores[keep])
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})


def roc_table(labels: np.ndarray, rows: Sequence[tuple[str, str, np.ndarray]]) -> pd.DataFrame | None:
    """The ROC curves (:func:`roc_points`) of scored rows ``(name, kind, scores)`` on one set of labels, in one
    long table ``curve, kind, fpr, tpr, threshold`` (``roc_curves.csv``); rows without a curve are left out, and
    None is returned when the first row (the model) has none."""
    return _curve_table(labels, rows, roc_points, ["curve", "kind", "fpr", "tpr", "threshold"])


def _curve_table(labels: np.ndarray, rows: Sequence[tuple[str, str, np.ndarray]], points, columns: list[str]
                 ) -> pd.DataFrame | None:
    parts = []
    for i, (name, kind, scores) in enumerate(rows):
        frame = points(labels, scores)
        if frame is None and i == 0:
            return None
        if frame is not None:
            parts.append(frame.assign(curve=name, kind=kind))
    return pd.concat(parts, ignore_index=True)[columns] if parts else None


def precision_at(tpr: np.ndarray, fpr: np.ndarray, prevalence: float) -> np.ndarray:
    """Precision (PPV) at a prevalence from sensitivity and 1 - specificity by Bayes' theorem,
    ``tpr p / (tpr p + fpr (1 - p))``; NaN where nobody is called. At the sample's own prevalence it is TP / (TP +
    FP) exactly."""
    tpr, fpr = np.asarray(tpr, float), np.asarray(fpr, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tpr * prevalence / (tpr * prevalence + fpr * (1 - prevalence))


def _operating_points(labels: np.ndarray, scores: np.ndarray, prevalence: float | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recall, precision, threshold) at every distinct threshold, highest first (recall rising), at
    ``prevalence`` (the labels' own when None); the point that calls nobody is left out."""
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    precision = precision_at(tpr, fpr, float(np.mean(labels)) if prevalence is None else prevalence)
    return tpr[1:], precision[1:], thresholds[1:]


def pr_points(labels: np.ndarray, scores: np.ndarray, prevalence: float | None = None) -> pd.DataFrame | None:
    """The empirical precision-recall curve (``recall, precision, threshold``, recall rising) over the rows with a
    0/1 label and a finite score, at the sample's prevalence or, given ``prevalence``, re-weighted to it: the
    precision of each operating point from its sensitivity and specificity by Bayes' theorem (the PR curve of a
    population with that prevalence and the same class-conditional score distributions). Drawn as a step that
    holds each point's precision back to the previous point's recall, it encloses the average precision (Saito &
    Rehmsmeier, PLoS One 2015, on PR curves of imbalanced data). None without two classes."""
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    keep = np.isfinite(scores) & np.isin(labels, (0, 1))
    if len(np.unique(labels[keep])) < 2:
        return None
    recall, precision, thresholds = _operating_points(labels[keep], scores[keep], prevalence)
    return pd.DataFrame({"recall": recall, "precision": precision, "threshold": thresholds})


def pr_table(labels: np.ndarray, rows: Sequence[tuple[str, str, np.ndarray]],
             target_prevalence: float | None = None) -> pd.DataFrame | None:
    """The precision-recall curves (:func:`pr_points`) of scored rows ``(name, kind, scores)`` at the sample's
    prevalence (``weighting`` ``sample``) and, with ``target_prevalence``, re-weighted to it (``target``), in one
    long table ``curve, kind, weighting, prevalence, recall, precision, threshold`` (``pr_curves.csv``); None when
    the first row (the model) has no curve."""
    labels = np.asarray(labels, float)
    parts = []
    sample = float(np.nanmean(np.where(np.isin(labels, (0, 1)), labels, np.nan)))
    for weighting, prevalence in (("sample", None), ("target", target_prevalence)):
        if weighting == "target" and prevalence is None:
            continue
        table = _curve_table(labels, rows, lambda y, s, p=prevalence: pr_points(y, s, p),
                             ["curve", "kind", "recall", "precision", "threshold"])
        if table is None:
            return None
        # at weighting "sample" each curve is at its own participants' prevalence; the column gives all labelled
        parts.append(table.assign(weighting=weighting, prevalence=sample if prevalence is None else prevalence))
    return pd.concat(parts, ignore_index=True)[["curve", "kind", "weighting", "prevalence", "recall", "precision",
                                                "threshold"]]


def pr_band(labels: np.ndarray, scores: np.ndarray, prevalence: float | None = None, grid: np.ndarray = RECALL_GRID,
            n_resamples: int = ROC_BAND_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Pointwise 95% band of the precision-recall curve (``recall, precision_low, precision_high``): a stratified
    bootstrap (the sample's prevalence is that of every resample), each resample's curve read at fixed recall the
    way :func:`pr_points` is drawn (the precision of the first operating point that reaches that recall), at the
    sample's prevalence or re-weighted to ``prevalence`` (vertical averaging as for the ROC band, Macskassy &
    Provost 2004). ``labels`` are 0/1 and ``scores`` finite."""
    values = []
    for block in resample_indices(len(labels), n_resamples, as_generator(seed), stratify=labels):  # THE bootstrap
        for idx in block:
            recall, precision, _ = _operating_points(labels[idx], scores[idx], prevalence)
            values.append(precision[np.minimum(np.searchsorted(recall, grid, side="left"), len(recall) - 1)])
    return pd.DataFrame({"recall": grid, "precision_low": np.nanquantile(values, 0.025, axis=0),
                         "precision_high": np.nanquantile(values, 0.975, axis=0)})


def pr_bands(labels: np.ndarray, scores: np.ndarray, target_prevalence: float | None = None,
             n_resamples: int = ROC_BAND_RESAMPLES, seed: int = 0) -> pd.DataFrame | None:
    """:func:`pr_band` at the sample's prevalence and, with ``target_prevalence``, re-weighted to it, over the rows
    with a 0/1 label and a finite score, as ``pr_band.csv`` (``weighting, prevalence, recall, precision_low,
    precision_high``); None without two classes."""
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    keep = np.isfinite(scores) & np.isin(labels, (0, 1))
    labels, scores = labels[keep], scores[keep]
    if len(np.unique(labels)) < 2:
        return None
    parts = [pr_band(labels, scores, None, n_resamples=n_resamples, seed=seed).assign(
        weighting="sample", prevalence=float(labels.mean()))]
    if target_prevalence is not None:
        parts.append(pr_band(labels, scores, target_prevalence, n_resamples=n_resamples, seed=seed).assign(
            weighting="target", prevalence=float(target_prevalence)))
    return pd.concat(parts, ignore_index=True)[["weighting", "prevalence", "recall", "precision_low",
                                                "precision_high"]]


def roc_band(labels: np.ndarray, scores: np.ndarray, grid: np.ndarray = ROC_GRID,
             n_resamples: int = ROC_BAND_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Pointwise 95% band of the ROC curve (``fpr, tpr_low, tpr_high``) by a stratified bootstrap with vertical
    averaging (sensitivity at fixed 1 - specificity; Macskassy & Provost 2004). ``labels`` are 0/1 and ``scores``
    finite (as :func:`roc_points` keeps them)."""
    curves = []
    for block in resample_indices(len(labels), n_resamples, as_generator(seed), stratify=labels):  # THE bootstrap
        for idx in block:
            fpr, tpr, _ = roc_curve(labels[idx], scores[idx])
            curves.append(np.interp(grid, fpr, tpr))
    return pd.DataFrame({"fpr": grid, "tpr_low": np.quantile(curves, 0.025, axis=0),
                         "tpr_high": np.quantile(curves, 0.975, axis=0)})


def quantile_bins(truth: np.ndarray, prediction: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Mean prediction, mean truth and size of each of ``n_bins`` equal-count bins of the prediction (rows
    where both are finite): a calibration curve."""
    truth, prediction = np.asarray(truth, float), np.asarray(prediction, float)
    keep = np.isfinite(truth) & np.isfinite(prediction)
    truth, prediction = truth[keep], prediction[keep]
    order = np.argsort(prediction, kind="stable")
    bins = [b for b in np.array_split(order, n_bins) if len(b)]
    return pd.DataFrame({"bin": np.arange(len(bins)), "mean_predicted": [prediction[b].mean() for b in bins],
                         "mean_observed": [truth[b].mean() for b in bins], "n": [len(b) for b in bins]})


def probability_calibration(table: pd.DataFrame) -> pd.DataFrame | None:
    """Observed LVH frequency against mean predicted probability for every LVH probability in the results
    table, in ``clip(n / 15, 3, 10)`` quantile bins; None without two LVH classes or probabilities."""
    if "lvh_true" not in table or table["lvh_true"].nunique() < 2:
        return None
    labels = table["lvh_true"].to_numpy(float)
    n_bins = int(np.clip(labels.size // 15, 3, 10))
    parts = [quantile_bins(labels, table[column], n_bins).assign(probability=column)
             for column in PROBABILITY_COLUMNS if column in table]
    return pd.concat(parts, ignore_index=True) if parts else None


def regression_calibration(table: pd.DataFrame, stem: str) -> pd.DataFrame | None:
    """Mean true value against mean prediction (as predicted, and recalibrated where the table has it) in
    ``clip(n / 10, 3, 10)`` quantile bins of the prediction; None without true values."""
    truth = table[f"{stem}_true"].to_numpy(float)
    if not np.isfinite(truth).any():
        return None
    n_bins = int(np.clip(len(truth) // 10, 3, 10))
    parts = [quantile_bins(truth, table[column], n_bins).assign(prediction=column)
             for column in (f"{stem}_pred", f"{stem}_pred_recal") if column in table]
    return pd.concat(parts, ignore_index=True)


def lr_curve(lr: Mapping[str, float], prediction: np.ndarray, n_points: int = 200) -> pd.DataFrame:
    """The logistic model on sex and prediction (:class:`aiecg.evaluate.calibration.SexLogisticModel`) per sex
    (``is_m``) on ``n_points`` predictions spanning the observed ones."""
    model = SexLogisticModel.from_dict(lr)
    grid = np.linspace(np.nanmin(prediction), np.nanmax(prediction), n_points)
    parts = [pd.DataFrame({"is_m": sex, "value": grid, "lvh_proba": model.predict_proba(np.full_like(grid, sex), grid)})
             for sex in (0, 1)]
    return pd.concat(parts, ignore_index=True)


def lr_cutoffs(lr: Mapping[str, float], threshold: float | None, guideline: Mapping[int, float] | None) -> pd.DataFrame:
    """Per sex (``is_m``): the prediction at which the logistic model crosses ``threshold`` (the learned
    cut-off; NaN without a threshold or a slope) and the guideline CMR cut-off of the target (NaN without one)."""
    rows = []
    for sex in (0, 1):
        learned = np.nan
        if threshold is not None and lr["coef_value"]:
            learned = (float(logit(threshold)) - lr["intercept"] - lr["coef_sex"] * sex) / lr["coef_value"]
        rows.append({"is_m": sex, "learned_cutoff": learned,
                     "guideline_cutoff": np.nan if guideline is None else guideline[sex]})
    return pd.DataFrame(rows)


def wilson_interval(events: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score 95% interval of a proportion (Wilson 1927; Brown, Cai & DasGupta, Stat Sci 2001)."""
    events, n = np.asarray(events, float), np.asarray(n, float)
    p = events / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def calibration_by_group(labels: np.ndarray, probs: np.ndarray, groups: dict[str, np.ndarray],
                         n_bins: int) -> pd.DataFrame:
    """Reliability curves of ``probs`` per group (quantile bins within the group), with Wilson intervals per bin
    and the group's calibration slope and intercept (Cox 1958; Van Calster et al. 2016), one row per bin:
    group, bin, mean_predicted, observed, n, low, high, slope, intercept, n_group, events_group."""
    from aiecg.evaluate.calibration import calibration_intercept, calibration_slope

    rows = []
    for name, member in groups.items():
        keep = member & np.isfinite(labels) & np.isfinite(probs)
        y, p = labels[keep], np.clip(probs[keep], 1e-6, 1 - 1e-6)
        if len(y) < 2 * 3 or len(np.unique(y)) < 2:
            continue
        slope, intercept = float(calibration_slope(y, p)), float(calibration_intercept(y, p))
        order = np.argsort(p, kind="stable")
        for k, block in enumerate(b for b in np.array_split(order, min(n_bins, len(y) // 3)) if len(b)):
            events = y[block].sum()
            low, high = wilson_interval(events, len(block))
            rows.append({"group": name, "bin": k, "mean_predicted": float(p[block].mean()),
                         "observed": float(events / len(block)), "n": int(len(block)), "low": float(low),
                         "high": float(high), "slope": slope, "intercept": intercept, "n_group": int(len(y)),
                         "events_group": int(y.sum())})
    return pd.DataFrame(rows)


def bias_not_estimable(n: int) -> dict[str, object]:
    """Why the proportional-bias regression of ``n`` pairs cannot be fitted: too few pairs, or (with 3 or more)
    no spread of the mean to regress on."""
    reason = (f"{n} participant(s) with both a measured and a predicted value; the regression of the difference "
              "on the mean needs at least 3" if n < 3 else
              f"the mean of the measured and predicted values is the same for all {n} participants, so the "
              "difference cannot be regressed on it")
    return {"status": "not_estimable", "reason": reason, "n": n}


def proportional_bias(truth: np.ndarray, predicted: np.ndarray) -> dict[str, object]:
    """Least-squares regression of the difference (predicted - truth) on the mean of the two (Bland & Altman,
    Stat Methods Med Res 1999, section 3.2): a slope other than 0 is a proportional bias. Returns ``status``
    ``estimated`` with slope, intercept, the slope's 95% interval, its p-value (t-test) and n, or ``not_estimable``
    with the reason and n (:func:`bias_not_estimable`): never NaN numbers."""
    from scipy import stats

    keep = np.isfinite(truth) & np.isfinite(predicted)
    mean, diff = (truth[keep] + predicted[keep]) / 2, predicted[keep] - truth[keep]
    if keep.sum() < 3 or np.ptp(mean) == 0:
        return bias_not_estimable(int(keep.sum()))
    fit = stats.linregress(mean, diff)
    half = stats.t.ppf(0.975, keep.sum() - 2) * fit.stderr
    return {"status": "estimated", "slope": float(fit.slope), "intercept": float(fit.intercept),
            "slope_low": float(fit.slope - half), "slope_high": float(fit.slope + half), "p": float(fit.pvalue),
            "n": int(keep.sum())}


def primary_calibration(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """:func:`calibration_by_group` of the LVH probability ``column`` of a results table, overall and by sex, in
    ``clip(labelled / 15, 3, 10)`` quantile bins."""
    labels, probs = table["lvh_true"].to_numpy(float), table[column].to_numpy(float)
    sex = table["is_m"].to_numpy(float)
    n_bins = int(np.clip(np.isfinite(labels).sum() // 15, 3, 10))
    return calibration_by_group(labels, probs, {"all": np.ones(len(labels), bool), "women": sex == 0,
                                                "men": sex == 1}, n_bins)


def median_beat_groups(beats: np.ndarray, lvh: np.ndarray | None, prediction: np.ndarray | None,
                       prediction_name: str = "prediction") -> list[dict[str, object]]:
    """Mean and SD over participants of their median beats ([n, leads, samples]) for the groups the report
    compares: CMR LVH against no LVH, and the highest against the lowest fifth of the prediction. One entry per
    comparison: name, and curves (label, n, mean [leads, samples], sd)."""
    def curve(label: str, member: np.ndarray) -> dict[str, object]:
        chosen = beats[member]
        return {"label": f"{label} (n={int(member.sum())})", "n": int(member.sum()), "mean": chosen.mean(axis=0),
                "sd": chosen.std(axis=0, ddof=1) if member.sum() > 1 else np.zeros(beats.shape[1:])}

    panels: list[dict[str, object]] = []
    if lvh is not None and len(np.unique(lvh[np.isfinite(lvh)])) == 2:
        panels.append({"name": "lvh", "curves": [curve("LVH", lvh == 1), curve("no LVH", lvh == 0)]})
    if prediction is not None and np.isfinite(prediction).sum() >= 2:
        low_cut, high_cut = np.nanquantile(prediction, [0.2, 0.8])
        panels.append({"name": "predicted", "what": prediction_name,
                       "curves": [curve("highest fifth of predictions", prediction >= high_cut),
                                  curve("lowest fifth", prediction <= low_cut)]})
    return panels
