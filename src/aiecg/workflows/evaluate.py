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
from aiecg.data.dataset import Arrays
from aiecg.data.features import ClinicalEncoder
from aiecg.data.selection import lvh_labels
from aiecg.data.splits import Splits
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec
from aiecg.evaluate import baselines, curves
from aiecg.evaluate.calibration import youden_threshold
from aiecg.evaluate.compare import ScoreRow, comparison_markdown, lvh_comparison, regression_comparison
from aiecg.evaluate.conformal import ConformalIntervals, coverage_report
from aiecg.evaluate.decision import decision_curves
from aiecg.evaluate.evaluation import (
    build_results,
    compute_metrics,
    compute_subgroups,
    criteria_rows,
    primary_lvh_score,
)
from aiecg.evaluate.posthoc import PostHoc
from aiecg.evaluate.reclassification import reclassification_table
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
    table = results_of(spec, arrays, y_pred, frame, posthoc)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in EVALUATION_FILES:  # an earlier evaluation's files never stand beside this one's as if its own
        (out_dir / name).unlink(missing_ok=True)
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
    rows: list[ScoreRow] = []
    if compare:
        metrics["comparison"], rows = write_comparison(spec, bundle, table, bundled.store, frame, bundled.cohort,
                                                 splits if split != "ids" and not unscored else None, out_dir,
                                                 seed, n_resamples,
                                                 criteria_options, score_regression=not unscored)
    write_curves(spec, table, posthoc, rows, out_dir, score_regression=not unscored)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))
    return metrics


def results_of(spec: TargetSpec, arrays: Arrays, y_pred: np.ndarray, frame: pd.DataFrame,
               posthoc: PostHoc) -> pd.DataFrame:
    """The results table of predictions for ``arrays`` (LVH labels from the cohort's ``frame``)."""
    return build_results(spec, arrays.ids, arrays.is_male, arrays.target, y_pred, lvh_labels(frame, arrays.ids),
                         posthoc)


def model_label(bundle: Bundle) -> str:
    meta = "" if bundle.encoder is not None else ", ECG only"
    return f"{bundle.model_name} ({bundle.target.name}{meta})"


def criteria_scores(store: Store, ids: np.ndarray, is_male: np.ndarray,
                    options: dict[str, dict[str, Any]] | None = None) -> list[ScoreRow]:
    """The classic LVH criteria of these participants (:func:`aiecg.evaluate.evaluation.criteria_rows`) from
    the measurements of their median beats in the store's index."""
    return criteria_rows(store.index.set_index("id").loc[list(map(str, ids))], is_male, options)


def baseline_rows(spec: TargetSpec, store: Store, frame: pd.DataFrame, splits: Splits, bundle: Bundle,
                  cohort: Cohort, seed: int) -> tuple[list[ScoreRow], dict[str, np.ndarray], dict[str, Any]]:
    """SVM/SVR on ECG measurements (+ clinical variables) and a clinical-only regression, trained on the
    training split and tuned on the validation split; their test scores as comparison rows."""
    index = store.index.set_index("id")
    measurements = {name: index.loc[list(map(str, getattr(splits, name)))] for name in ("train", "val", "test")}
    encoder = bundle.encoder
    if encoder is None and cohort.mapping.clinical.columns:
        encoder = ClinicalEncoder(cohort.mapping.clinical).fit(frame.set_index(ID).loc[splits.train].reset_index())
    by_id = frame.set_index(ID)
    clinical = {name: (encoder.transform(by_id.loc[list(getattr(splits, name))].reset_index()) if encoder
                       else np.zeros((len(getattr(splits, name)), 0))) for name in ("train", "val", "test")}
    features = baselines.feature_sets(measurements, clinical)
    rows: list[ScoreRow] = []
    regression: dict[str, np.ndarray] = {}
    params: dict[str, Any] = {}
    lvh = {name: lvh_labels(frame, getattr(splits, name)) for name in ("train", "val", "test")}
    has_lvh = lvh["train"] is not None and all(len(np.unique(v)) == 2 for v in lvh.values())
    sets = ["ecg+clinical", "ecg"] if encoder is not None else ["ecg"]
    if has_lvh:
        for name in sets:
            val_scores, test_scores, chosen = baselines.fit_svm_classifier(features[name], lvh["train"], lvh["val"],
                                                                            seed)
            params[f"svm_{name}"] = chosen
            rows.append(ScoreRow(f"SVM {name}", "baseline", test_scores, youden_threshold(lvh["val"], val_scores),
                                 "validation Youden"))
        if encoder is not None:
            proba_val, proba_test = baselines.fit_clinical_logistic(features["clinical"], lvh["train"])
            rows.append(ScoreRow("Logistic clinical-only", "baseline", proba_test,
                                 youden_threshold(lvh["val"], proba_val), "validation Youden"))
    if spec.is_regression:
        column = spec.outputs[0]
        y = {name: by_id.loc[list(getattr(splits, name)), column].to_numpy(dtype=float)
             for name in ("train", "val", "test")}
        for name in sets:
            predictions, chosen = baselines.fit_svr(features[name], y["train"], y["val"])
            params[f"svr_{name}"] = chosen
            regression[f"SVR {name}"] = predictions
        if encoder is not None:
            regression["Linear clinical-only"] = baselines.fit_clinical_linear(features["clinical"], y["train"])
    return rows, regression, params


CURVE_FILES = ("roc_curves.csv", "roc_band.csv", "pr_curves.csv", "pr_band.csv", "calibration_curve.csv",
               "probability_calibration.csv", "regression_calibration.csv", "proportional_bias.json", "lr_curve.csv",
               "lr_cutoffs.csv")
"""What :func:`write_curves` may write; the report draws these (see docs/architecture.md)."""

COMPARISON_FILES = ("comparison_scores.csv", "comparison.csv", "comparison_regression.csv", "comparison.md",
                    "decision_curve.csv", "reclassification.csv")
"""What :func:`write_comparison` may write."""

EVALUATION_FILES = ("exclusions.csv", "results.csv", "metrics.json", *CURVE_FILES, *COMPARISON_FILES)
"""Every file an evaluation may write: removed from its folder before it writes, so that none is left over from an
earlier evaluation whose outputs this one does not produce (another target, ``--no-compare``)."""


def write_curves(spec: TargetSpec, table: pd.DataFrame, posthoc: PostHoc, rows: list[ScoreRow], out_dir: Path,
                 score_regression: bool = True) -> list[str]:
    """The curves of this evaluation, each where it applies (:mod:`aiecg.evaluate.curves`): the ROC curves of the
    model's primary LVH score and of every baseline and criterion row (``roc_curves.csv``), the model's pointwise
    bootstrap band (``roc_band.csv``), the precision-recall curves of the same rows at the sample's prevalence and
    re-weighted to the target prevalence (``pr_curves.csv``) with the model's bands (``pr_band.csv``), the primary
    probability's calibration overall and by sex with Wilson intervals, slope and intercept
    (``calibration_curve.csv``), calibration of every LVH probability (``probability_calibration.csv``) and of a
    continuous prediction (``regression_calibration.csv``) with its proportional bias (``proportional_bias.json``),
    the LR model per sex (``lr_curve.csv``) and its cut-offs (``lr_cutoffs.csv``). Returns the names written."""
    written: list[str] = []

    def save(frame: pd.DataFrame | None, name: str) -> None:
        if frame is not None and len(frame):
            write_csv(frame, out_dir / name)
            written.append(name)

    primary = primary_lvh_score(spec, table)
    labels = table["lvh_true"].to_numpy(float) if "lvh_true" in table else None
    if labels is not None and primary is not None:
        scored = [(primary[0], "model", primary[1])] + [(row.name, row.kind, row.scores) for row in rows
                                                        if row.kind != "model"]
        roc = curves.roc_table(labels, scored)
        if roc is not None:
            save(roc, "roc_curves.csv")
            keep = np.isfinite(primary[1]) & np.isin(labels, (0, 1))
            save(curves.roc_band(labels[keep], primary[1][keep]), "roc_band.csv")
            save(curves.pr_table(labels, scored, posthoc.target_prevalence), "pr_curves.csv")
            save(curves.pr_bands(labels, primary[1], posthoc.target_prevalence), "pr_band.csv")
            if "proba" in primary[0]:
                save(curves.primary_calibration(table, primary[0]), "calibration_curve.csv")
    save(curves.probability_calibration(table), "probability_calibration.csv")
    if spec.is_regression and score_regression:
        save(curves.regression_calibration(table, spec.stem), "regression_calibration.csv")
        bias = curves.proportional_bias(table[f"{spec.stem}_true"].to_numpy(float),
                                        table[f"{spec.stem}_pred"].to_numpy(float))
        atomic_write_text(out_dir / "proportional_bias.json", json.dumps(bias, indent=2))
        written.append("proportional_bias.json")
    if spec.is_regression and posthoc.lr is not None and "lvh_proba_lr" in table:
        save(curves.lr_curve(posthoc.lr.to_dict(), table[f"{spec.stem}_pred"].to_numpy(float)), "lr_curve.csv")
        guideline = spec.lvh_thresholds
        save(curves.lr_cutoffs(posthoc.lr.to_dict(), posthoc.threshold,
                               None if guideline is None else {0: guideline.female, 1: guideline.male}),
             "lr_cutoffs.csv")
    return written


def write_comparison(spec: TargetSpec, bundle: Bundle, table: pd.DataFrame, store: Store, frame: pd.DataFrame,
                     cohort: Cohort, splits: Splits | None, out_dir: Path, seed: int, n_resamples: int,
                     criteria_options: dict[str, dict[str, Any]] | None = None,
                     score_regression: bool = True) -> tuple[dict, list[ScoreRow]]:
    """Model, baselines (when training data exist) and criteria on the same test participants.

    Writes ``comparison.csv``/``comparison.md`` (and ``comparison_regression.csv``), and every row's
    per-participant score (``score: NAME``; criteria as their margin over the published cut-off, so a call is
    ``>= 0``) and regression prediction (``prediction: NAME``) in ``comparison_scores.csv`` for figures; the
    decision curves of the model's LVH probability against the criteria (``decision_curve.csv``); and the
    reclassification of participants by the model against each criterion (``reclassification.csv``)."""
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
    rows += criteria_scores(store, ids, table["is_m"].to_numpy(), criteria_options)
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
    model_row = next((row for row in rows if row.kind == "model"), None)
    criteria = {row.name: row.scores for row in rows if row.kind == "criterion"}
    if lvh is not None and model_row is not None and criteria and min(np.sum(lvh == 1), np.sum(lvh == 0)) >= 1:
        summary["reclassification"] = write_reclassification(lvh, model_row, criteria, out_dir, seed, n_resamples)
    regression_table = None
    if regression:
        stem = spec.stem
        regression_table = regression_comparison(table[f"{stem}_true"].to_numpy(), regression, seed, n_resamples)
        write_csv(regression_table, out_dir / "comparison_regression.csv")
        summary["regression"] = regression_table.to_dict(orient="records")
    title = f"{model_label(bundle)} against baselines and classic criteria"
    (out_dir / "comparison.md").write_text(comparison_markdown(lvh_table, regression_table, title))
    return summary, rows


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


RECLASSIFICATION = "reclassification.csv"


def write_reclassification(labels: np.ndarray, model: ScoreRow, criteria: dict[str, np.ndarray], out_dir: Path,
                           seed: int, n_resamples: int) -> dict[str, Any]:
    """The categorical NRI of the model's calls at its operating point over each criterion's calls, events and
    non-events separately (:mod:`aiecg.evaluate.reclassification`), into ``reclassification.csv``; returns what
    metrics.json records of it."""
    table = reclassification_table(labels, model.scores, model.threshold, criteria, seed=seed,
                                   n_resamples=n_resamples)
    write_csv(table, out_dir / RECLASSIFICATION)
    return {"file": RECLASSIFICATION, "model": model.name, "threshold": float(model.threshold),
            "threshold_source": model.threshold_source, "n_resamples": n_resamples,
            "bootstrap": "percentile, stratified by LVH", "rows": table.to_dict(orient="records")}
