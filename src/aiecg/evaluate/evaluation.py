"""The numbers of an evaluation: the results table, metrics with intervals, subgroups and criteria rows.

Pure statistics over predictions that were already made, on arrays and frames (no store, no bundle, no torch);
the workflow that applies a bundle to a cohort, reads the store and writes the files is
:mod:`aiecg.workflows.evaluate`. The threshold chosen on the test split itself is also
reported, labelled optimistic, because that is how the reference code reported it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aiecg.data.cohort import ID
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.evaluate.calibration import youden_threshold
from aiecg.evaluate.compare import ScoreRow
from aiecg.evaluate.curves import bias_not_estimable
from aiecg.evaluate.posthoc import PostHoc, posthoc_columns
from aiecg.evaluate.results import results_table
from aiecg.evaluate.stats import classification_report, regression_report, subgroup_reports
from aiecg.signal.criteria import ECG_CRITERIA, all_criteria


def build_results(spec: TargetSpec, ids: np.ndarray, is_male: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                  lvh_true: np.ndarray | None, posthoc: PostHoc) -> pd.DataFrame:
    """The per-participant results table with the reference's columns, including post-hoc columns."""
    table = results_table(ids, is_male, spec, y_true, y_pred, lvh_true)
    extra = posthoc_columns(spec, posthoc, y_pred, is_male)
    for column in extra.columns:
        table[column] = extra[column].to_numpy()
    return table


def primary_lvh_score(spec: TargetSpec, table: pd.DataFrame) -> tuple[str, np.ndarray] | None:
    """The results column that ranks LVH risk: the model's probability, else the LR probability."""
    if spec.kind is TaskKind.BINARY:
        return "lvh_proba", table["lvh_proba"].to_numpy()
    if "lvh_proba_lr" in table:
        return "lvh_proba_lr", table["lvh_proba_lr"].to_numpy()
    return None


def proportional_bias_status(fit: dict[str, Any]) -> dict[str, Any]:
    """A saved proportional-bias fit (:func:`aiecg.evaluate.curves.proportional_bias`; Bland & Altman 1999) with
    its ``status``: as it is where it has one; a file written before the status existed is ``estimated`` where its
    numbers are finite, else ``not_estimable`` with the reason (:func:`aiecg.evaluate.curves.bias_not_estimable`)."""
    if fit.get("status"):
        return dict(fit)
    keys = ("slope", "intercept", "slope_low", "slope_high", "p")
    if all(isinstance(fit.get(k), (int, float)) and np.isfinite(fit[k]) for k in keys):
        return {"status": "estimated", **fit}
    return bias_not_estimable(int(fit.get("n", 0)))


def predictive_values(sensitivity: float, specificity: float, prevalence: float) -> tuple[float, float]:
    """PPV and NPV at a given prevalence from sensitivity and specificity (Bayes' theorem)."""
    sens, spec, prev = np.float64(sensitivity), np.float64(specificity), np.float64(prevalence)
    with np.errstate(invalid="ignore", divide="ignore"):
        ppv = sens * prev / (sens * prev + (1 - spec) * (1 - prev))
        npv = spec * (1 - prev) / (spec * (1 - prev) + (1 - sens) * prev)
    return float(ppv), float(npv)


def prevalence_report(report: dict[str, Any], sample_prevalence: float,
                      target_prevalence: float | None) -> dict[str, Any]:
    """Which prevalence the reported figures describe, and PPV/NPV at the stated target prevalence.

    The bootstrap PPV and NPV of a report describe the sample's own LVH share, which in an enriched cohort is far
    above the population's; sensitivity and specificity do not depend on it. The target-prevalence PPV/NPV use the
    sensitivity and specificity estimates; their range combines the two intervals' bounds (a conservative range,
    since PPV and NPV are monotone in both)."""
    out: dict[str, Any] = {
        "sample": sample_prevalence, "target": target_prevalence,
        "note": "ppv/npv in the threshold reports describe the sample prevalence; *_at_target use the target "
                "prevalence (prior-shift adjusted probabilities are adjusted to it too)",
    }
    if target_prevalence:
        sens, spec = report["sensitivity"], report["specificity"]
        ppv, npv = predictive_values(sens["estimate"], spec["estimate"], target_prevalence)
        ppv_low, npv_low_a = predictive_values(sens["low"], spec["low"], target_prevalence)
        ppv_high, npv_high_a = predictive_values(sens["high"], spec["high"], target_prevalence)
        out["ppv_at_target"] = {"estimate": ppv, "low": ppv_low, "high": ppv_high}
        out["npv_at_target"] = {"estimate": npv, "low": min(npv_low_a, npv_high_a),
                                "high": max(npv_low_a, npv_high_a)}
    return out


def compute_metrics(spec: TargetSpec, table: pd.DataFrame, posthoc: PostHoc, seed: int,
                    n_resamples: int) -> dict[str, Any]:
    """Every headline number of one results table, each with its 95% interval."""
    metrics: dict[str, Any] = {"n": len(table), "target": spec.name}
    if spec.is_regression:
        for stem in spec.stems:
            if table[f"{stem}_true"].isna().all():  # a cohort without this target (only its LVH label)
                continue
            metrics[stem] = regression_report(table[f"{stem}_true"], table[f"{stem}_pred"], seed=seed,
                                              n_resamples=n_resamples)
            if f"{stem}_pred_recal" in table:
                metrics[f"{stem}_recalibrated"] = regression_report(table[f"{stem}_true"], table[f"{stem}_pred_recal"],
                                                                    seed=seed, n_resamples=n_resamples)
    elif spec.kind is TaskKind.MULTICLASS:
        truth, pred = table[f"{spec.stem}_true"].to_numpy(), table[f"{spec.stem}_pred"].to_numpy()
        metrics["accuracy"] = float(np.mean(truth == pred))
        metrics["confusion"] = pd.crosstab(truth, pred).to_dict()
    if "lvh_true" not in table or table["lvh_true"].isna().all() or table["lvh_true"].nunique() < 2:
        return metrics
    labels = table["lvh_true"].to_numpy(dtype=float)
    metrics["lvh_cases"] = int(np.nansum(labels))
    if "lvh_pred_cutoff" in table:
        metrics["lvh_cutoff"] = classification_report(labels, table["lvh_pred_cutoff"], 0.5, seed=seed,
                                                      n_resamples=n_resamples, probabilities=False)
    primary = primary_lvh_score(spec, table)
    if primary is not None:
        column, scores = primary
        metrics["lvh_score"] = column
        if posthoc.threshold is not None:
            metrics["lvh_at_validation_youden"] = classification_report(labels, scores, posthoc.threshold, seed=seed,
                                                                        n_resamples=n_resamples)
        metrics["lvh_at_0.5"] = classification_report(labels, scores, 0.5, seed=seed, n_resamples=n_resamples)
        if posthoc.threshold is not None:
            metrics["prevalence"] = prevalence_report(metrics["lvh_at_validation_youden"], float(np.nanmean(labels)),
                                                      posthoc.target_prevalence)
        optimistic = youden_threshold(labels, scores)
        metrics["lvh_at_test_youden_optimistic"] = {
            "note": "threshold chosen on the test split itself (the reference's way): optimistic",
            **classification_report(labels, scores, optimistic, seed=seed, n_resamples=n_resamples),
        }
    return metrics


def compute_subgroups(spec: TargetSpec, table: pd.DataFrame, frame: pd.DataFrame, posthoc: PostHoc, seed: int,
                      n_resamples: int) -> dict[str, Any]:
    """The primary metric by sex and by age and BMI tertiles (where the cohort has age and BMI)."""
    joined = table.copy()
    clinical = frame.set_index(ID)
    tertiles = [c for c in ("age", "bmi") if c in clinical]
    for column in tertiles:
        joined[column] = pd.to_numeric(clinical[column].reindex(table["eid"].astype(str)), errors="coerce").to_numpy()
    result: dict[str, Any] = {}
    if spec.is_regression and table[f"{spec.stem}_true"].notna().any():
        stem = spec.stem
        result[stem] = subgroup_reports(joined, "regression", f"{stem}_true", f"{stem}_pred", seed=seed,
                                        tertile_columns=tertiles, n_resamples=n_resamples)
    primary = primary_lvh_score(spec, table)
    if primary is not None and posthoc.threshold is not None and table["lvh_true"].nunique() == 2:
        result["lvh"] = subgroup_reports(joined, "classification", "lvh_true", primary[0], seed=seed,
                                         tertile_columns=tertiles, threshold=posthoc.threshold,
                                         n_resamples=n_resamples)
    return result


def criteria_rows(measurements: pd.DataFrame, is_male: np.ndarray,
                  options: dict[str, dict[str, Any]] | None = None) -> list[ScoreRow]:
    """The registered LVH criteria of each participant from the measurements of their median beat (one row
    each, in the order of ``is_male``); each row's score is the criterion's signed margin over its
    (sex-specific) published cut-off, so calls are ``>= 0``."""
    lvh = {name: c for name, c in ECG_CRITERIA.items() if c.lvh}
    margins: dict[str, list[float]] = {name: [] for name in lvh}
    for (_, row), male in zip(measurements.iterrows(), is_male):
        results = all_criteria(row.to_dict(), "male" if male else "female", options)
        for name, criterion in lvh.items():
            result = results[name]
            margins[name].append(np.nan if result.positive is None else criterion.margin(result))
    return [ScoreRow(criterion.label, "criterion", np.asarray(margins[name], dtype=float), 0.0, "published cut-off")
            for name, criterion in lvh.items()]


def headline(test_metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a person reads first, from :func:`compute_metrics` output (estimates with 95% CIs)."""
    out: dict[str, Any] = {"n": test_metrics.get("n"), "lvh_cases": test_metrics.get("lvh_cases")}
    for key, value in test_metrics.items():
        if isinstance(value, dict) and "mae" in value:
            out[f"{key}_mae"] = value["mae"]
            out[f"{key}_pearson_r"] = value["pearson_r"]
    lvh = test_metrics.get("lvh_at_validation_youden") or test_metrics.get("lvh_at_0.5")
    if lvh:
        out["lvh_auroc"] = lvh["auroc"]
        out["lvh_sensitivity"] = lvh["sensitivity"]
        out["lvh_specificity"] = lvh["specificity"]
    if "accuracy" in test_metrics:
        out["accuracy"] = test_metrics["accuracy"]
    return out
