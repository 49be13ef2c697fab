"""The curves a report draws, computed once at evaluation time from the results table: ROC curves and the
model's pointwise bootstrap band, calibration in quantile bins (LVH probabilities, overall and by sex with Wilson
intervals, and continuous predictions), the proportional bias of a continuous prediction, and the logistic model
on sex and prediction with the cut-offs it implies.

Each function takes arrays or frames and returns a long-format frame that :mod:`aiecg.workflows.evaluate` saves
under the names in ``docs/architecture.md``; the report only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from aiecg.evaluate.bootstrap import as_generator, resample_indices
from aiecg.evaluate.calibration import SexLogisticModel, logit

ROC_GRID = np.linspace(0, 1, 101)
"""1 - specificity values at which the ROC band is given."""
ROC_BAND_RESAMPLES = 200
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


def proportional_bias(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Least-squares regression of the difference (predicted - truth) on the mean of the two (Bland & Altman,
    Stat Methods Med Res 1999, section 3.2): a slope other than 0 is a proportional bias. Returns slope,
    intercept, the slope's 95% interval and its p-value (t-test), and n."""
    from scipy import stats

    keep = np.isfinite(truth) & np.isfinite(predicted)
    mean, diff = (truth[keep] + predicted[keep]) / 2, predicted[keep] - truth[keep]
    if keep.sum() < 3 or np.ptp(mean) == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "slope_low": float("nan"),
                "slope_high": float("nan"), "p": float("nan"), "n": int(keep.sum())}
    fit = stats.linregress(mean, diff)
    half = stats.t.ppf(0.975, keep.sum() - 2) * fit.stderr
    return {"slope": float(fit.slope), "intercept": float(fit.intercept), "slope_low": float(fit.slope - half),
            "slope_high": float(fit.slope + half), "p": float(fit.pvalue), "n": int(keep.sum())}


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
