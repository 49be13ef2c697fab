"""One comparison table: every model, baseline and classic criterion on the same test participants.

LVH discrimination (AUROC with DeLong's interval, and DeLong's test against the best row), and sensitivity and
specificity at each row's threshold: the validation-chosen Youden threshold for learned scores, the published
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


def lvh_comparison(labels: np.ndarray, rows: list[ScoreRow], seed: int, n_resamples: int = 1000) -> pd.DataFrame:
    """AUROC, sensitivity and specificity of every row on the participants where every row has a score, with
    DeLong's test of the AUROC and McNemar's tests of sensitivity and specificity against the row of highest
    AUROC."""
    labels = np.asarray(labels, dtype=float)
    common = np.isfinite(labels)
    for row in rows:
        common &= np.isfinite(row.scores)
    y = labels[common]
    records, aucs = [], []
    for row in rows:
        s = row.scores[common]
        auc = delong_auc_ci(y, s)
        report = classification_report(y, s, row.threshold, seed=seed, n_resamples=n_resamples, probabilities=False)
        aucs.append(auc.estimate)
        records.append({
            "name": row.name, "kind": row.kind, "n": int(len(y)), "lvh_cases": int(y.sum()),
            "auroc": auc.estimate, "auroc_low": auc.low, "auroc_high": auc.high,
            "threshold": row.threshold, "threshold_source": row.threshold_source,
            **{f"{m}{suffix}": report[m][key] for m in ("sensitivity", "specificity")
               for suffix, key in (("", "estimate"), ("_low", "low"), ("_high", "high"))},
        })
    best = int(np.nanargmax(aucs))
    best_calls = rows[best].scores[common] >= rows[best].threshold
    for i, record in enumerate(records):
        record["best"] = i == best
        if i == best:
            record.update(delong_p_vs_best=float("nan"), mcnemar_sensitivity_p_vs_best=float("nan"),
                          mcnemar_specificity_p_vs_best=float("nan"))
            continue
        calls = rows[i].scores[common] >= rows[i].threshold
        record["delong_p_vs_best"] = delong_test(y, rows[best].scores[common], rows[i].scores[common]).p_value
        record["mcnemar_sensitivity_p_vs_best"] = compare_sensitivity(y, best_calls, calls).p_value
        record["mcnemar_specificity_p_vs_best"] = compare_specificity(y, best_calls, calls).p_value
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
        lines += [f"LVH discrimination on {int(lvh['n'].iloc[0])} test participants "
                  f"({int(lvh['lvh_cases'].iloc[0])} with LVH); p-values against the best row: DeLong for AUROC, "
                  "McNemar for sensitivity and specificity.", "",
                  "| score | kind | AUROC (95% CI) | DeLong p | sensitivity (95% CI) | McNemar p | "
                  "specificity (95% CI) | McNemar p | threshold |", "|---|---|---|---|---|---|---|---|---|"]
        for r in lvh.itertuples():
            def p(value: float, best: bool = r.best) -> str:
                return "best" if best else (f"{value:.2g}" if np.isfinite(value) else "n/a")

            lines.append(
                f"| {r.name} | {r.kind} | {_fmt(r.auroc, r.auroc_low, r.auroc_high)} | {p(r.delong_p_vs_best)} | "
                f"{_fmt(r.sensitivity, r.sensitivity_low, r.sensitivity_high)} | "
                f"{p(r.mcnemar_sensitivity_p_vs_best)} | "
                f"{_fmt(r.specificity, r.specificity_low, r.specificity_high)} | "
                f"{p(r.mcnemar_specificity_p_vs_best)} | "
                f"{'published cut-off' if r.kind == 'criterion' else f'{r.threshold:.3g} ({r.threshold_source})'} |")
    if regression is not None and len(regression):
        lines += ["", f"Regression on {int(regression['n'].iloc[0])} test participants.", "",
                  "| prediction | MAE (95% CI) | bias (95% CI) | Pearson r (95% CI) |", "|---|---|---|---|"]
        for r in regression.itertuples():
            lines.append(f"| {r.name} | {_fmt(r.mae, r.mae_low, r.mae_high, 2)} | "
                         f"{_fmt(r.bias, r.bias_low, r.bias_high, 2)} | "
                         f"{_fmt(r.pearson_r, r.pearson_r_low, r.pearson_r_high)} |")
    return "\n".join(lines) + "\n"
