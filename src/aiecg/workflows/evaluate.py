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

from aiecg.bundle import Bundle, load_bundle
from aiecg.config import default_store
from aiecg.csvfile import write_csv
from aiecg.data.cohort import ID, Cohort, load_cohort
from aiecg.data.dataset import build_arrays
from aiecg.data.selection import (
    check_clinical_columns,
    ids_digest,
    make_splits,
    usable_cohort,
)
from aiecg.data.splits import Splits
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec
from aiecg.errors import BundleError, CohortError
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


def training_splits(bundle: Bundle, frame: pd.DataFrame, cohort_path: str | Path, bundle_path: str | Path) -> Splits:
    """The training run's splits, re-created from its seed; refused when the test split is not the one the
    model was tested on (a changed cohort could otherwise leak training participants into the test set)."""
    training = bundle.training
    splits = make_splits(frame, bundle.target, int(training["split_seed"]), tuple(training["split_fractions"]))
    if ids_digest(splits.test) != training.get("test_ids_sha256"):
        raise BundleError(f"{cohort_path}: re-creating the test split of {bundle_path} gave other participants "
                          "than at training time (the cohort changed); use --split all for another cohort")
    return splits


def check_store_contract(bundle: Bundle, store: Store, cohort_path: str | Path) -> None:
    """The store must hold what the model was trained on: its leads, rate, window and pre-processing."""
    from aiecg.cliopts import prepare_flags

    bundle.check_input(store.manifest, f"store {store.root}",
                       f"Re-prepare the cohort to a new store: aiecg prepare --cohort {cohort_path} --out NEW_STORE "
                       f"{prepare_flags(bundle.input_spec)}, then pass --store NEW_STORE.")


def evaluate_bundle(
    bundle_path: str | Path, cohort_path: str | Path, store_path: str | Path | None, out_dir: str | Path,
    split: str = "test", ids: np.ndarray | None = None, compare: bool = True, seed: int = 0,
    n_resamples: int = 1000, target_prevalence: float | None = None,
    criteria_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Apply a saved bundle to a cohort and write ``results.csv``, ``metrics.json`` and (with ``compare``)
    ``comparison.csv``/``comparison.md``/``comparison_regression.csv`` and ``decision_curve.csv`` to ``out_dir``.

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
    bundle = load_bundle(bundle_path)
    spec = bundle.target
    cohort = load_cohort(cohort_path, tuple(spec.outputs))
    store = Store.open(store_path or default_store(cohort_path))
    check_store_contract(bundle, store, cohort_path)
    cohort = usable_cohort(cohort, store)
    check_clinical_columns(bundle, cohort, cohort_path)
    frame = cohort.frame
    splits = None
    if ids is not None:
        test_ids = np.asarray(ids, dtype=str)
        missing = np.setdiff1d(test_ids, frame[ID].to_numpy(dtype=str))
        if missing.size:
            raise CohortError(f"{cohort_path}: {missing.size} of the {test_ids.size} requested participants are not "
                              f"usable there (no usable ECG in {store.root} or not in the cohort), e.g. "
                              f"{', '.join(missing[:5])}; see the store's index for why, or leave them out")
    elif split == "test":
        splits = training_splits(bundle, frame, cohort_path, bundle_path)
        test_ids = splits.test
    elif split == "all":
        test_ids = frame[ID].to_numpy(dtype=str)
    else:
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    arrays = build_arrays(store, frame, test_ids, spec, bundle.input_spec["leads"], bundle.encoder)
    y_pred = predict(bundle.build_model(), arrays.ecg, arrays.meta, spec, bundle.scaling)
    posthoc = PostHoc.from_dict(bundle.thresholds.get("posthoc"))
    if target_prevalence is not None:
        posthoc = dataclasses.replace(posthoc, target_prevalence=target_prevalence)
    table = build_results(spec, arrays, y_pred, frame, posthoc)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cohort.write_exclusions(out_dir / "exclusions.csv")
    write_csv(table, out_dir / "results.csv")
    metrics: dict[str, Any] = {
        "bundle": str(bundle_path), "cohort": str(cohort_path), "split": "ids" if ids is not None else split,
        "seed": seed, "n_resamples": n_resamples, "posthoc": posthoc.to_dict(),
        "test": compute_metrics(spec, table, posthoc, seed, n_resamples),
        "subgroups": compute_subgroups(spec, table, frame, posthoc, seed, n_resamples),
    }
    conformal = ConformalIntervals.from_dict(bundle.thresholds.get("conformal"))  # issue 12: interval coverage
    if conformal is not None:
        metrics["conformal"] = coverage_report(conformal, spec, table)
    if splits is not None:
        metrics["split_sizes"] = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    if compare:
        metrics["comparison"] = write_comparison(spec, bundle, table, store, frame, cohort,
                                                 splits if ids is None else None, out_dir, seed, n_resamples,
                                                 criteria_options)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))
    return metrics


def write_comparison(spec: TargetSpec, bundle: Bundle, table: pd.DataFrame, store: Store, frame: pd.DataFrame,
                     cohort: Cohort, splits: Splits | None, out_dir: Path, seed: int, n_resamples: int,
                     criteria_options: dict[str, dict[str, Any]] | None = None) -> dict:
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
    if spec.is_regression:
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
