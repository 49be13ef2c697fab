"""``aiecg evaluate``: a saved bundle applied to a cohort -> results.csv, metrics.json, comparison.csv/.md.

Everything is computed from the bundle and the cohort's prepared store through THE prediction loop
(:func:`aiecg.predict.predict`). Thresholds and post-hoc models come from the bundle (fitted on the training
run's validation split); the threshold chosen on the test split itself is also reported, labelled optimistic,
because that is how the reference code reported it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiecg.bundle import Bundle, load_bundle
from aiecg.data.cohort import GROUP, ID, SPLIT, Cohort, load_cohort
from aiecg.data.dataset import Arrays, build_arrays
from aiecg.data.features import ClinicalEncoder
from aiecg.data.splits import Splits, split_groups, split_participants
from aiecg.data.store import STATUS_OK, Store
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.errors import BundleError, CohortError
from aiecg.evaluate import baselines
from aiecg.evaluate.calibration import youden_threshold
from aiecg.evaluate.compare import ScoreRow, comparison_markdown, lvh_comparison, regression_comparison
from aiecg.evaluate.posthoc import PostHoc, posthoc_columns
from aiecg.evaluate.results import COLUMN_STEM, results_table
from aiecg.evaluate.stats import classification_report, regression_report, subgroup_reports
from aiecg.predict import predict
from aiecg.signal.criteria import all_criteria

CRITERIA_LABELS = {"sokolow_lyon": "Sokolow-Lyon", "cornell_voltage": "Cornell voltage",
                   "cornell_product": "Cornell product", "peguero_lo_presti": "Peguero-Lo Presti",
                   "romhilt_estes": "Romhilt-Estes (partial)"}


def ids_digest(ids: np.ndarray) -> str:
    """A short fingerprint of a set of participant ids (order-free)."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:16]


def usable_cohort(cohort: Cohort, store: Store) -> Cohort:
    """Drop participants whose ECG is missing from the store or failed QC, recording each reason."""
    index = store.index.set_index("id")
    status = cohort.frame[ID].map(index["status"]).fillna("not in store")
    reason = cohort.frame[ID].map(index["reason"]).fillna("")
    bad = status != STATUS_OK
    extra = pd.DataFrame({
        "row": np.nan, ID: cohort.frame.loc[bad, ID],
        "reason": [f"ECG {s}" + (f": {r}" if r else "") for s, r in zip(status[bad], reason[bad])],
    })
    exclusions = pd.concat([cohort.exclusions, extra], ignore_index=True) if len(extra) else cohort.exclusions
    return Cohort(cohort.mapping, cohort.frame.loc[~bad].reset_index(drop=True), exclusions)


def stratification_labels(frame: pd.DataFrame, spec: TargetSpec) -> np.ndarray | None:
    """Labels to stratify the split by: the class for categorical targets, LVH for mass targets."""
    if spec.is_categorical:
        return frame[spec.outputs[0]].to_numpy()
    if "LVH" in frame and frame["LVH"].notna().all():
        return frame["LVH"].to_numpy()
    return None


def make_splits(frame: pd.DataFrame, spec: TargetSpec, seed: int, fractions: tuple[float, float, float]) -> Splits:
    """The cohort's predefined split when its YAML names one (e.g. PTB-XL's folds), else a seeded
    participant-level split stratified by :func:`stratification_labels` (by group when the YAML names a group
    column, so one patient's records never straddle splits)."""
    if SPLIT in frame:
        parts = [np.sort(frame.loc[frame[SPLIT] == name, ID].to_numpy(dtype=str)) for name in ("train", "val", "test")]
        empty = [name for name, ids in zip(("train", "val", "test"), parts) if len(ids) == 0]
        if empty:
            raise CohortError(f"the cohort's predefined split leaves {empty} empty")
        return Splits(*parts)
    if GROUP in frame:
        return split_groups(frame[ID].to_numpy(), frame[GROUP].to_numpy(), seed, fractions,
                            stratification_labels(frame, spec))
    return split_participants(frame[ID].to_numpy(), seed, fractions, stratification_labels(frame, spec))


def check_clinical_columns(bundle: Bundle, cohort: Cohort, cohort_path: str | Path) -> None:
    """A cohort must map exactly the clinical columns the model was trained with (same names, same kinds)."""
    if bundle.encoder is None:
        return
    expected = list(bundle.encoder.spec.columns)
    mapped = list(cohort.mapping.clinical.columns)
    missing = [c for c in expected if c not in mapped or c not in cohort.frame.columns]
    unexpected = [c for c in mapped if c not in expected]
    if missing or unexpected:
        raise CohortError(
            f"{cohort_path}: the model was trained with clinical columns {expected}; "
            f"missing here: {missing or 'none'}; unexpected here: {unexpected or 'none'}. "
            "Map the same variables under 'clinical' (rename columns in the YAML's table), or use an ECG-only model."
        )


def lvh_labels(frame: pd.DataFrame, ids: np.ndarray) -> np.ndarray | None:
    return frame.set_index(ID)["LVH"].reindex(ids).to_numpy(dtype=float) if "LVH" in frame else None


def build_results(spec: TargetSpec, arrays: Arrays, y_pred: np.ndarray, frame: pd.DataFrame,
                  posthoc: PostHoc) -> pd.DataFrame:
    """The per-participant results table with the reference's columns, including post-hoc columns."""
    table = results_table(arrays.ids, arrays.is_male, spec, arrays.target, y_pred, lvh_labels(frame, arrays.ids))
    extra = posthoc_columns(spec, posthoc, y_pred, arrays.is_male)
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


def compute_metrics(spec: TargetSpec, table: pd.DataFrame, posthoc: PostHoc, seed: int,
                    n_resamples: int) -> dict[str, Any]:
    """Every headline number of one results table, each with its 95% interval."""
    metrics: dict[str, Any] = {"n": len(table), "target": spec.target.value}
    if spec.is_regression:
        for name in spec.outputs:
            stem = COLUMN_STEM[name]
            metrics[stem] = regression_report(table[f"{stem}_true"], table[f"{stem}_pred"], seed=seed,
                                              n_resamples=n_resamples)
            if f"{stem}_pred_recal" in table:
                metrics[f"{stem}_recalibrated"] = regression_report(table[f"{stem}_true"], table[f"{stem}_pred_recal"],
                                                                    seed=seed, n_resamples=n_resamples)
    elif spec.kind is TaskKind.MULTICLASS:
        truth, pred = table["hn_true"].to_numpy(), table["hn_pred"].to_numpy()
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
    if spec.is_regression:
        stem = COLUMN_STEM[spec.outputs[0]]
        result[stem] = subgroup_reports(joined, "regression", f"{stem}_true", f"{stem}_pred", seed=seed,
                                        tertile_columns=tertiles, n_resamples=n_resamples)
    primary = primary_lvh_score(spec, table)
    if primary is not None and posthoc.threshold is not None and table["lvh_true"].nunique() == 2:
        result["lvh"] = subgroup_reports(joined, "classification", "lvh_true", primary[0], seed=seed,
                                         tertile_columns=tertiles, threshold=posthoc.threshold,
                                         n_resamples=n_resamples)
    return result


def criteria_rows(store: Store, ids: np.ndarray, is_male: np.ndarray) -> list[ScoreRow]:
    """The classic ECG-LVH criteria of each participant, from the measurements of their median beat."""
    index = store.index.set_index("id").loc[list(map(str, ids))]
    scores: dict[str, list[float]] = {name: [] for name in CRITERIA_LABELS}
    thresholds: dict[str, list[float]] = {name: [] for name in CRITERIA_LABELS}
    for (_, measurements), male in zip(index.iterrows(), is_male):
        for name, result in all_criteria(measurements.to_dict(), "male" if male else "female").items():
            scores[name].append(result.score)
            thresholds[name].append(result.threshold)
    rows = []
    for name, label in CRITERIA_LABELS.items():
        score, cut = np.asarray(scores[name], dtype=float), np.asarray(thresholds[name], dtype=float)
        # sex-specific cut-offs: compare score minus cut-off, so one threshold (0) serves both sexes
        strict = name in ("cornell_voltage", "cornell_product")  # '>' cut-offs; the others are '>='
        rows.append(ScoreRow(label, "criterion", score - cut - (1e-9 if strict else 0.0), 0.0, "published cut-off"))
    return rows


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


def model_label(bundle: Bundle) -> str:
    meta = "" if bundle.encoder is not None else ", ECG only"
    return f"{bundle.model_name} ({bundle.target.target.value}{meta})"


def evaluate_bundle(
    bundle_path: str | Path, cohort_path: str | Path, store_path: str | Path | None, out_dir: str | Path,
    split: str = "test", ids: np.ndarray | None = None, compare: bool = True, seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Apply a saved bundle to a cohort and write ``results.csv``, ``metrics.json`` and (with ``compare``)
    ``comparison.csv``/``comparison.md``/``comparison_regression.csv`` to ``out_dir``.

    Args:
        split: ``test`` re-creates the training run's test split from its seed and checks it holds the same
            participants (so a changed cohort cannot leak training rows into the test set); the ML baselines are
            then trained on its training split and tuned on its validation split. ``all`` evaluates every usable
            participant (an external cohort; criteria are compared, baselines are not).
        ids: evaluate exactly these participants instead (no baselines).
        compare: build the comparison with baselines and classic criteria.
        seed, n_resamples: the bootstrap's.
    """
    bundle = load_bundle(bundle_path)
    spec = bundle.target
    cohort = load_cohort(cohort_path, tuple(spec.outputs))
    store = Store.open(store_path or Path(cohort_path).parent / "store")
    cohort = usable_cohort(cohort, store)
    check_clinical_columns(bundle, cohort, cohort_path)
    frame = cohort.frame
    splits = None
    if ids is not None:
        test_ids = np.asarray(ids, dtype=str)
    elif split == "test":
        training = bundle.training
        splits = make_splits(frame, spec, int(training["split_seed"]), tuple(training["split_fractions"]))
        if ids_digest(splits.test) != training.get("test_ids_sha256"):
            raise BundleError(f"{cohort_path}: re-creating the test split of {bundle_path} gave other participants "
                              "than at training time (the cohort changed); use split='all' for a new cohort")
        test_ids = splits.test
    elif split == "all":
        test_ids = frame[ID].to_numpy(dtype=str)
    else:
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    arrays = build_arrays(store, frame, test_ids, spec, bundle.input_spec["leads"], bundle.encoder)
    y_pred = predict(bundle.build_model(), arrays.ecg, arrays.meta, spec, bundle.scaling)
    posthoc = PostHoc.from_dict(bundle.thresholds.get("posthoc"))
    table = build_results(spec, arrays, y_pred, frame, posthoc)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cohort.write_exclusions(out_dir / "exclusions.csv")
    table.to_csv(out_dir / "results.csv", index=False)
    metrics: dict[str, Any] = {
        "bundle": str(bundle_path), "cohort": str(cohort_path), "split": "ids" if ids is not None else split,
        "seed": seed, "n_resamples": n_resamples, "posthoc": posthoc.to_dict(),
        "test": compute_metrics(spec, table, posthoc, seed, n_resamples),
        "subgroups": compute_subgroups(spec, table, frame, posthoc, seed, n_resamples),
    }
    if splits is not None:
        metrics["split_sizes"] = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    if compare:
        metrics["comparison"] = write_comparison(spec, bundle, table, store, frame, cohort,
                                                 splits if ids is None else None, out_dir, seed, n_resamples)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def write_comparison(spec: TargetSpec, bundle: Bundle, table: pd.DataFrame, store: Store, frame: pd.DataFrame,
                     cohort: Cohort, splits: Splits | None, out_dir: Path, seed: int, n_resamples: int) -> dict:
    """Model, baselines (when training data exist) and criteria on the same test participants."""
    ids = table["eid"].astype(str).to_numpy()
    rows: list[ScoreRow] = []
    primary = primary_lvh_score(spec, table)
    posthoc = PostHoc.from_dict(bundle.thresholds.get("posthoc"))
    if primary is not None and posthoc.threshold is not None:
        rows.append(ScoreRow(model_label(bundle), "model", primary[1], posthoc.threshold, "validation Youden"))
    regression: dict[str, np.ndarray] = {}
    params: dict[str, Any] = {}
    if spec.is_regression:
        stem = COLUMN_STEM[spec.outputs[0]]
        regression[model_label(bundle)] = table[f"{stem}_pred"].to_numpy()
        if f"{stem}_pred_recal" in table:
            regression[f"{model_label(bundle)} recalibrated"] = table[f"{stem}_pred_recal"].to_numpy()
    if splits is not None:
        base_rows, base_regression, params = baseline_rows(spec, store, frame, splits, bundle, cohort, seed)
        rows += base_rows
        regression.update(base_regression)
    rows += criteria_rows(store, ids, table["is_m"].to_numpy())
    summary: dict[str, Any] = {"baseline_hyperparameters": params}
    lvh = table["lvh_true"].to_numpy(dtype=float) if "lvh_true" in table else None
    lvh_table = pd.DataFrame()
    if lvh is not None and min(np.sum(lvh == 1), np.sum(lvh == 0)) >= 2:  # DeLong needs two of each class
        lvh_table = lvh_comparison(lvh, rows, seed, n_resamples)
        lvh_table.to_csv(out_dir / "comparison.csv", index=False)
        summary["lvh"] = lvh_table.to_dict(orient="records")
    regression_table = None
    if regression:
        stem = COLUMN_STEM[spec.outputs[0]]
        regression_table = regression_comparison(table[f"{stem}_true"].to_numpy(), regression, seed, n_resamples)
        regression_table.to_csv(out_dir / "comparison_regression.csv", index=False)
        summary["regression"] = regression_table.to_dict(orient="records")
    title = f"{model_label(bundle)} against baselines and classic criteria"
    (out_dir / "comparison.md").write_text(comparison_markdown(lvh_table, regression_table, title))
    return summary
