"""One comparison table: every model, baseline and classic criterion on the same test participants.

LVH discrimination (AUROC with DeLong's interval, and DeLong's test against the pre-specified reference row, the
model; never a row chosen by its test AUROC, which would bias every p-value), and sensitivity and specificity at
each row's threshold: the validation-chosen Youden threshold for learned scores, the published
cut-off for criteria. For continuous targets, the regression rows (MAE and Pearson r with bootstrap intervals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aiecg.evaluate.delong import compare_sensitivity, compare_specificity, delong_auc_ci, delong_test
from aiecg.evaluate.stats import classification_report, regression_report


@dataclass(frozen=True)
class ScoreRow:
    """One LVH score on the test participants.

    Attributes:
        name: the row's label (e.g. ``FCN (INDEXED_MASS)``, ``SVM ECG+clinical``, ``Sokolow-Lyon``).
        kind: ``model``, ``baseline`` or ``criterion``.
        scores: higher means more likely LVH; NaN where the score is unavailable.
        threshold: calls are ``scores >= threshold``.
        threshold_source: where the threshold came from (``validation Youden``, ``published``, ...).
    """

    name: str
    kind: str
    scores: np.ndarray
    threshold: float
    threshold_source: str


_LVH_STATISTICS = ("auroc", "auroc_low", "auroc_high", "sensitivity", "sensitivity_low", "sensitivity_high",
                   "specificity", "specificity_low", "specificity_high", "delong_p_vs_reference",
                   "mcnemar_sensitivity_p_vs_reference", "mcnemar_specificity_p_vs_reference")


def reference_row(rows: list[ScoreRow]) -> int:
    """The pre-specified reference of a comparison: the first ``model`` row (else the first row)."""
    return next((i for i, row in enumerate(rows) if row.kind == "model"), 0)


def lvh_comparison(labels: np.ndarray, rows: list[ScoreRow], seed: int, n_resamples: int = 1000) -> pd.DataFrame:
    """AUROC, sensitivity and specificity of every row, with DeLong's test of the AUROC and McNemar's tests of
    sensitivity and specificity against the reference row (:func:`reference_row`, chosen before looking at any
    result).

    Each row is evaluated on the participants where both it and the reference have a score (a criterion whose
    call is unknown for a participant, e.g. a point score with missing inputs, leaves that participant out of its
    own row only); ``n`` and ``lvh_cases`` say how many.
    """
    labels = np.asarray(labels, dtype=float)
    ref = reference_row(rows)
    ref_scores = rows[ref].scores
    records = []
    for i, row in enumerate(rows):
        common = np.isfinite(labels) & np.isfinite(row.scores) & np.isfinite(ref_scores)
        y, s = labels[common], row.scores[common]
        record = {"name": row.name, "kind": row.kind, "n": int(len(y)), "lvh_cases": int(y.sum()),
                  "threshold": row.threshold, "threshold_source": row.threshold_source, "reference": i == ref}
        if min(y.sum(), len(y) - y.sum()) < 2:  # DeLong needs two of each class
            records.append({**record, **dict.fromkeys(_LVH_STATISTICS, np.nan)})
            continue
        auc = delong_auc_ci(y, s)
        report = classification_report(y, s, row.threshold, seed=seed, n_resamples=n_resamples, probabilities=False)
        record.update({"auroc": auc.estimate, "auroc_low": auc.low, "auroc_high": auc.high,
                       **{f"{m}{suffix}": report[m][key] for m in ("sensitivity", "specificity")
                          for suffix, key in (("", "estimate"), ("_low", "low"), ("_high", "high"))}})
        if i == ref:
            record.update(delong_p_vs_reference=np.nan, mcnemar_sensitivity_p_vs_reference=np.nan,
                          mcnemar_specificity_p_vs_reference=np.nan)
        else:
            ref_s = ref_scores[common]
            ref_calls, calls = ref_s >= rows[ref].threshold, s >= row.threshold
            record["delong_p_vs_reference"] = delong_test(y, ref_s, s).p_value
            record["mcnemar_sensitivity_p_vs_reference"] = compare_sensitivity(y, ref_calls, calls).p_value
            record["mcnemar_specificity_p_vs_reference"] = compare_specificity(y, ref_calls, calls).p_value
        records.append(record)
    return pd.DataFrame(records)


def regression_comparison(y_true: np.ndarray, predictions: dict[str, np.ndarray], seed: int,
                          n_resamples: int = 1000) -> pd.DataFrame:
    """MAE, bias and Pearson r with bootstrap intervals for each named prediction of the same truth."""
    records = []
    for name, y_pred in predictions.items():
        report = regression_report(y_true, y_pred, seed=seed, n_resamples=n_resamples)
        records.append({"name": name, "n": report["n"], **{
            f"{m}{suffix}": report[m][key] for m in ("mae", "bias", "pearson_r")
            for suffix, key in (("", "estimate"), ("_low", "low"), ("_high", "high"))}})
    return pd.DataFrame(records)


def _fmt(value: float, low: float, high: float, digits: int = 3) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def comparison_markdown(lvh: pd.DataFrame, regression: pd.DataFrame | None, title: str) -> str:
    """The comparison as Markdown tables (estimates with 95% intervals)."""
    lines = [f"# {title}", ""]
    if len(lvh):
        lines += [f"LVH discrimination on {int(lvh['n'].max())} test participants "
                  f"({int(lvh['lvh_cases'].max())} with LVH; a row with fewer, n, lacks scores for the others); "
                  "p-values against the pre-specified reference "
                  f"({lvh.loc[lvh['reference'], 'name'].iloc[0]}): DeLong for AUROC, McNemar for sensitivity and "
                  "specificity.", "",
                  "| score | kind | n | AUROC (95% CI) | DeLong p | sensitivity (95% CI) | McNemar p | "
                  "specificity (95% CI) | McNemar p | threshold |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in lvh.itertuples():
            def p(value: float, reference: bool = r.reference) -> str:
                return "reference" if reference else (f"{value:.2g}" if np.isfinite(value) else "n/a")

            lines.append(
                f"| {r.name} | {r.kind} | {r.n} | {_fmt(r.auroc, r.auroc_low, r.auroc_high)} | "
                f"{p(r.delong_p_vs_reference)} | "
                f"{_fmt(r.sensitivity, r.sensitivity_low, r.sensitivity_high)} | "
                f"{p(r.mcnemar_sensitivity_p_vs_reference)} | "
                f"{_fmt(r.specificity, r.specificity_low, r.specificity_high)} | "
                f"{p(r.mcnemar_specificity_p_vs_reference)} | "
                f"{'published cut-off' if r.kind == 'criterion' else f'{r.threshold:.3g} ({r.threshold_source})'} |")
    if regression is not None and len(regression):
        lines += ["", f"Regression on {int(regression['n'].iloc[0])} test participants.", "",
                  "| prediction | MAE (95% CI) | bias (95% CI) | Pearson r (95% CI) |", "|---|---|---|---|"]
        for r in regression.itertuples():
            lines.append(f"| {r.name} | {_fmt(r.mae, r.mae_low, r.mae_high, 2)} | "
                         f"{_fmt(r.bias, r.bias_low, r.bias_high, 2)} | "
                         f"{_fmt(r.pearson_r, r.pearson_r_low, r.pearson_r_high)} |")
    return "\n".join(lines) + "\n"
