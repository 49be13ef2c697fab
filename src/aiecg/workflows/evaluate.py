"""``aiecg evaluate``: a saved bundle applied to a cohort -> results.csv, metrics.json, comparison.csv/.md.

Everything is computed from the bundle and the cohort's prepared store through THE prediction loop
(:func:`aiecg.predict.predict`). Thresholds and post-hoc models come from the bundle (fitted on the training
run's validation split).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aiecg.bundle import Bundle
from aiecg.csvfile import write_csv
from aiecg.data.cohort import ID, Cohort
from aiecg.data.splits import Splits
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec
from aiecg.evaluate.compare import ScoreRow, comparison_markdown, lvh_comparison, regression_comparison
from aiecg.evaluate.conformal import ConformalIntervals, coverage_report
from aiecg.evaluate.decision import decision_curves
from aiecg.evaluate.evaluation import (
    baseline_rows,
    build_results,
    compute_metrics,
    compute_subgroups,
    criteria_rows,
    model_label,
    primary_lvh_score,
)
from aiecg.evaluate.posthoc import PostHoc
from aiecg.files import atomic_write_text
from aiecg.predict import predict
from aiecg.workflows.bundled import BundledCohort, open_bundled


def evaluate_bundle(
    bundle_path: str | Path, cohort_path: str | Path, store_path: str | Path | None, out_dir: str | Path,
    split: str = "test", ids: np.ndarray | None = None, compare: bool = True, seed: int = 0,
    n_resamples: int = 1000, target_prevalence: float | None = None,
    criteria_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Apply a saved bundle to a cohort (:func:`aiecg.workflows.bundled.open_bundled`) and write its evaluation
    (:func:`evaluate_bundled`) to ``out_dir``.

    Args:
        split: ``test`` re-creates the training run's test split from its seed and checks it holds the same
            participants (so a changed cohort cannot leak training rows into the test set); the ML baselines are
            then trained on its training split and tuned on its validation split. ``all`` evaluates every usable
            participant (an external cohort; criteria are compared, baselines are not).
        ids: evaluate exactly these participants instead (no baselines).
        compare: build the comparison with baselines and classic criteria.
        seed, n_resamples: the bootstrap's.
        target_prevalence: the LVH prevalence prior-adjusted probabilities, PPV and NPV are stated at (default:
            the bundle's, set at training: the training split's unless chosen).
        criteria_options: per-criterion options (e.g. ``{"cornell_product": {"female_adjustment_mv": 0.8}}``).
    """
    bundled = open_bundled(bundle_path, cohort_path, store_path)
    splits = None
    if ids is not None:
        test_ids, split = bundled.check_ids(ids), "ids"
    elif split == "test":
        splits = bundled.training_splits()
        test_ids = splits.test
    elif split == "all":
        test_ids = bundled.frame[ID].to_numpy(dtype=str)
    else:
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    return evaluate_bundled(bundled, test_ids, out_dir, split, splits, compare=compare, seed=seed,
                            n_resamples=n_resamples, target_prevalence=target_prevalence,
                            criteria_options=criteria_options)


def evaluate_bundled(
    bundled: BundledCohort, test_ids: np.ndarray, out_dir: str | Path, split: str, splits: Splits | None,
    model: torch.nn.Module | None = None, compare: bool = True, seed: int = 0, n_resamples: int = 1000,
    target_prevalence: float | None = None, criteria_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Predict ``test_ids`` through THE prediction loop and write ``exclusions.csv``, ``results.csv``,
    ``metrics.json`` and (with ``compare``) the comparison files to ``out_dir``; returns the metrics.

    Args:
        split: what ``test_ids`` are (``test``, ``all`` or ``ids``), as metrics.json records it.
        splits: the training run's splits when ``test_ids`` is its test split: the baselines are fitted on them.
        model: the bundle's model already in memory (a training run hands it over); default: built from the
            bundle's weights.
    """
    bundle, spec, frame = bundled.bundle, bundled.spec, bundled.frame
    arrays = bundled.arrays(test_ids)
    y_pred = predict(model if model is not None else bundle.build_model(), arrays.ecg, arrays.meta, spec,
                     bundle.scaling)
    posthoc = PostHoc.from_dict(bundle.thresholds.get("posthoc"))
    if target_prevalence is not None:
        posthoc = dataclasses.replace(posthoc, target_prevalence=target_prevalence)
    table = build_results(spec, arrays, y_pred, frame, posthoc)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundled.cohort.write_exclusions(out_dir / "exclusions.csv")
    write_csv(table, out_dir / "results.csv")
    metrics: dict[str, Any] = {
        "bundle": str(bundled.bundle_path), "cohort": str(bundled.cohort_path), "split": split,
        "seed": seed, "n_resamples": n_resamples, "posthoc": posthoc.to_dict(),
        "test": compute_metrics(spec, table, posthoc, seed, n_resamples),
        "subgroups": compute_subgroups(spec, table, frame, posthoc, seed, n_resamples),
    }
    unscored = [name for name in spec.outputs if name not in bundled.scored]
    if unscored:  # issue 25: e.g. an indexed-mass model on a cohort with LVH labels only
        metrics["unscored"] = {"outputs": unscored, "reason": f"{bundled.cohort_path} does not map "
                               f"{', '.join(unscored)}; only the model's LVH outputs are scored"}
    conformal = ConformalIntervals.from_dict(bundle.thresholds.get("conformal"))  # issue 12: interval coverage
    if conformal is not None and not unscored:
        metrics["conformal"] = coverage_report(conformal, spec, table)
    if splits is not None:
        metrics["split_sizes"] = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    if compare:
        metrics["comparison"] = write_comparison(spec, bundle, table, bundled.store, frame, bundled.cohort,
                                                 splits if split != "ids" and not unscored else None, out_dir,
                                                 seed, n_resamples,
                                                 criteria_options, score_regression=not unscored)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))
    return metrics


def write_comparison(spec: TargetSpec, bundle: Bundle, table: pd.DataFrame, store: Store, frame: pd.DataFrame,
                     cohort: Cohort, splits: Splits | None, out_dir: Path, seed: int, n_resamples: int,
                     criteria_options: dict[str, dict[str, Any]] | None = None,
                     score_regression: bool = True) -> dict:
    """Model, baselines (when training data exist) and criteria on the same test participants.

    Writes ``comparison.csv``/``comparison.md`` (and ``comparison_regression.csv``), and every row's
    per-participant score (``score: NAME``; criteria as their margin over the published cut-off, so a call is
    ``>= 0``) and regression prediction (``prediction: NAME``) in ``comparison_scores.csv`` for figures; and the
    decision curves of the model's LVH probability against the criteria (``decision_curve.csv``)."""
    ids = table["eid"].astype(str).to_numpy()
    rows: list[ScoreRow] = []
    primary = primary_lvh_score(spec, table)
    posthoc = PostHoc.from_dict(bundle.thresholds.get("posthoc"))
    if primary is not None and posthoc.threshold is not None:
        rows.append(ScoreRow(model_label(bundle), "model", primary[1], posthoc.threshold, "validation Youden"))
    regression: dict[str, np.ndarray] = {}
    params: dict[str, Any] = {}
    if spec.is_regression and score_regression:
        stem = spec.stem
        regression[model_label(bundle)] = table[f"{stem}_pred"].to_numpy()
        if f"{stem}_pred_recal" in table:
            regression[f"{model_label(bundle)} recalibrated"] = table[f"{stem}_pred_recal"].to_numpy()
    if splits is not None:
        base_rows, base_regression, params = baseline_rows(spec, store, frame, splits, bundle, cohort, seed)
        rows += base_rows
        regression.update(base_regression)
    rows += criteria_rows(store, ids, table["is_m"].to_numpy(), criteria_options)
    scores = pd.DataFrame({"eid": ids, **{f"score: {row.name}": row.scores for row in rows},
                           **{f"prediction: {name}": values for name, values in regression.items()}})
    write_csv(scores, out_dir / "comparison_scores.csv")
    summary: dict[str, Any] = {"baseline_hyperparameters": params, "scores_file": "comparison_scores.csv"}
    lvh = table["lvh_true"].to_numpy(dtype=float) if "lvh_true" in table else None
    lvh_table = pd.DataFrame()
    if lvh is not None and min(np.sum(lvh == 1), np.sum(lvh == 0)) >= 2:  # DeLong needs two of each class
        lvh_table = lvh_comparison(lvh, rows, seed, n_resamples)
        write_csv(lvh_table, out_dir / "comparison.csv")
        summary["lvh"] = lvh_table.to_dict(orient="records")
    if lvh is not None and primary is not None and min(np.sum(lvh == 1), np.sum(lvh == 0)) >= 1:
        summary["decision_curve"] = write_decision_curve(model_label(bundle), primary, lvh, rows, out_dir, seed,
                                                         n_resamples)
    regression_table = None
    if regression:
        stem = spec.stem
        regression_table = regression_comparison(table[f"{stem}_true"].to_numpy(), regression, seed, n_resamples)
        write_csv(regression_table, out_dir / "comparison_regression.csv")
        summary["regression"] = regression_table.to_dict(orient="records")
    title = f"{model_label(bundle)} against baselines and classic criteria"
    (out_dir / "comparison.md").write_text(comparison_markdown(lvh_table, regression_table, title))
    return summary


DECISION_CURVE = "decision_curve.csv"


def write_decision_curve(name: str, primary: tuple[str, np.ndarray], labels: np.ndarray, rows: list[ScoreRow],
                         out_dir: Path, seed: int, n_resamples: int) -> dict[str, Any]:
    """Decision curves (Vickers & Elkin 2006; :mod:`aiecg.evaluate.decision`) of the model's LVH probability
    ``primary`` (results column, values) against each classic criterion's call at its published cut-off,
    treat-all and treat-none, into ``decision_curve.csv``; returns what metrics.json records of it."""
    column, probabilities = primary
    calls = {row.name: np.where(np.isfinite(row.scores), (row.scores >= row.threshold).astype(float), np.nan)
             for row in rows if row.kind == "criterion"}
    curves = decision_curves(labels, {name: probabilities}, calls, seed=seed, n_resamples=n_resamples)
    curves.to_csv(out_dir / DECISION_CURVE, index=False, float_format="%.6g")
    return {"file": DECISION_CURVE, "model": name, "score": column, "n_resamples": n_resamples,
            "bootstrap": "pointwise percentile, participants resampled without stratification"}
