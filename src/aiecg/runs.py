"""Run orchestration: cohort + store -> splits -> encoder -> model -> fit -> bundle -> predictions -> results.

These functions tie the stages together for the command line and ``train.py``; each stage stays in its module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LinearRegression

from aiecg import __version__
from aiecg.bundle import Bundle, load_bundle, save_bundle
from aiecg.config import RunConfig
from aiecg.data.augment import AugmentConfig
from aiecg.data.cohort import ID, SPLIT, Cohort, load_cohort
from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling, build_arrays, expand_with_beats
from aiecg.data.features import ClinicalEncoder
from aiecg.data.splits import Splits, split_participants
from aiecg.data.store import STATUS_OK, Store
from aiecg.data.targets import TargetSpec, target_spec
from aiecg.errors import BundleError, CohortError
from aiecg.evaluate.results import results_table, summarise_results
from aiecg.models import create_model
from aiecg.predict import predict
from aiecg.train.finetune import FinetuneConfig, staged_finetune
from aiecg.train.loop import FitConfig, fit
from aiecg.train.losses import make_loss

log = logging.getLogger("aiecg")


@dataclass
class RunResult:
    run_dir: Path
    bundle_path: Path
    metrics: dict[str, Any]


def _ids_digest(ids: np.ndarray) -> str:
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


def make_splits(frame: pd.DataFrame, spec: TargetSpec, seed: int,
                fractions: tuple[float, float, float]) -> Splits:
    """The cohort's predefined split when its YAML names one (e.g. PTB-XL's folds), else a seeded
    participant-level split stratified by :func:`stratification_labels`."""
    if SPLIT in frame:
        parts = [np.sort(frame.loc[frame[SPLIT] == name, ID].to_numpy(dtype=str)) for name in ("train", "val", "test")]
        empty = [name for name, ids in zip(("train", "val", "test"), parts) if len(ids) == 0]
        if empty:
            raise CohortError(f"the cohort's predefined split leaves {empty} empty")
        return Splits(*parts)
    return split_participants(frame[ID].to_numpy(), seed, fractions, stratification_labels(frame, spec))


def _required_targets(spec: TargetSpec) -> tuple[str, ...]:
    return tuple(spec.outputs)


def evaluate_arrays(model: torch.nn.Module, arrays: Arrays, frame: pd.DataFrame, spec: TargetSpec,
                    scaling: TargetScaling | None, device: str = "cpu") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predict ``arrays`` and build its results table and headline metrics."""
    y_pred = predict(model, arrays.ecg, arrays.meta, spec, scaling, device=device)
    lvh = frame.set_index(ID)["LVH"].reindex(arrays.ids).to_numpy() if "LVH" in frame else None
    table = results_table(arrays.ids, arrays.is_male, spec, arrays.target, y_pred, lvh)
    return table, summarise_results(table, spec)


def class_weights(labels: np.ndarray, spec: TargetSpec) -> tuple[float | None, torch.Tensor | None]:
    """BCE ``pos_weight`` (negatives / positives) for a binary target, or inverse-frequency class weights
    (normalised to mean 1) for a multi-class one, from the training labels."""
    counts = np.bincount(labels, minlength=spec.n_outputs if spec.kind.value == "multiclass" else 2).astype(float)
    if (counts == 0).any():
        raise CohortError(f"--loss_weighting: class(es) {np.flatnonzero(counts == 0).tolist()} have no training rows")
    if spec.kind.value == "binary":
        return counts[0] / counts[1], None
    weights = counts.sum() / (len(counts) * counts)
    return None, torch.tensor(weights / weights.mean(), dtype=torch.float32)


def clinical_linear_baseline(train: Arrays, test: Arrays) -> np.ndarray:
    """A linear regression on the encoded clinical variables alone, fitted on the training split."""
    model = LinearRegression().fit(train.meta, train.target)
    return model.predict(test.meta)


def train_run(config: RunConfig, progress: bool = True) -> RunResult:
    """Train one model as configured and evaluate it on its validation and test splits.

    Writes to ``config.run_dir``: ``config.yaml``, ``exclusions.csv``, ``splits.json`` and the id lists,
    ``encoder.json``, ``epochs.csv``, ``model.aiecg`` (the bundle), ``results.csv`` (test),
    ``results_val.csv`` and ``metrics.json``.
    """
    spec = target_spec(config.target)
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")
    cohort = load_cohort(config.cohort, _required_targets(spec))
    store = Store.open(config.store_path())
    cohort = usable_cohort(cohort, store)
    cohort.write_exclusions(run_dir / "exclusions.csv")
    if len(cohort.exclusions):
        log.warning("%d participants excluded; reasons in %s", len(cohort.exclusions), run_dir / "exclusions.csv")
    frame = cohort.frame
    if len(frame) < 10:
        raise CohortError(f"{config.cohort}: only {len(frame)} usable participants; need at least 10 to split")
    splits = make_splits(frame, spec, config.split_seed, config.split_fractions)
    splits.save(run_dir)
    encoder = None
    if not config.excl_meta:
        encoder = ClinicalEncoder(cohort.mapping.clinical).fit(frame.set_index(ID).loc[splits.train].reset_index())
        (run_dir / "encoder.json").write_text(json.dumps(encoder.to_dict(), indent=2, default=float))
    arrays = {name: build_arrays(store, frame, ids, spec, config.leads, encoder)
              for name, ids in (("train", splits.train), ("val", splits.val), ("test", splits.test))}
    train_arrays = arrays["train"]
    if config.beat_expansion:
        lvh = frame.set_index(ID)["LVH"].reindex(train_arrays.ids).to_numpy() == 1
        train_arrays = expand_with_beats(train_arrays, store, lvh, config.leads)
        log.info("beat expansion: %d training samples from %d participants", len(train_arrays), len(arrays["train"]))
    scaling = TargetScaling.fit(arrays["train"].target) if spec.is_regression else None
    labels = train_arrays.target[:, 0].astype(np.int64) if spec.is_categorical else None
    pos_weight, class_weight = class_weights(labels, spec) if config.loss_weighting else (None, None)
    fit_config = config.fit
    if config.augment and fit_config.augment is None:
        fit_config = dataclasses.replace(fit_config, augment=AugmentConfig())
    torch.manual_seed(config.fit.seed)  # model initialisation
    model = create_model(config.arch, len(config.leads), train_arrays.ecg.shape[2],
                         train_arrays.meta.shape[1], spec.n_outputs, **config.model_kwargs)
    result = fit(model, ECGDataset(train_arrays, scaling), ECGDataset(arrays["val"], scaling),
                 make_loss(config.criterion, spec, pos_weight, class_weight), fit_config, run_dir, progress,
                 labels=labels, resume=config.resume)

    input_spec = {"leads": list(config.leads), "fs": store.manifest["fs"], "window": store.manifest["window"],
                  "r_offset": store.manifest["r_offset"], "preprocessing": store.manifest["preprocessing"]}
    bundle = Bundle(
        model_name=config.arch, model_kwargs=config.model_kwargs, n_leads=len(config.leads),
        n_samples=train_arrays.ecg.shape[2], n_meta=train_arrays.meta.shape[1], n_outputs=spec.n_outputs,
        target=spec, input_spec=input_spec, state_dict=model.state_dict(), encoder=encoder, scaling=scaling,
        training={"cohort": str(Path(config.cohort).resolve()), "split_seed": config.split_seed,
                  "split_fractions": list(config.split_fractions), "test_ids_sha256": _ids_digest(splits.test),
                  "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
                  "n_train_samples": len(train_arrays), "criterion": config.criterion,
                  "sampling": config.fit.sampling, "loss_weighting": config.loss_weighting,
                  "augment": fit_config.augment is not None, "beat_expansion": config.beat_expansion,
                  "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                  "epochs_run": result.epochs_run, "seconds": result.seconds, "aiecg": __version__},
    )
    bundle_path = save_bundle(bundle, run_dir / "model.aiecg")

    metrics: dict[str, Any] = {"run": config.name, "target": spec.target.value, "arch": config.arch,
                               "clinical_features": encoder.feature_names if encoder else [],
                               "split_sizes": {k: len(v) for k, v in arrays.items()},
                               "training": bundle.training}
    for name in ("val", "test"):
        table, summary = evaluate_arrays(model, arrays[name], frame, spec, scaling, config.fit.device)
        table.to_csv(run_dir / ("results.csv" if name == "test" else f"results_{name}.csv"), index=False)
        metrics[name] = summary
    if spec.is_regression and encoder is not None:
        baseline = clinical_linear_baseline(arrays["train"], arrays["test"])
        lvh = frame.set_index(ID)["LVH"].reindex(arrays["test"].ids).to_numpy() if "LVH" in frame else None
        table = results_table(arrays["test"].ids, arrays["test"].is_male, spec, arrays["test"].target, baseline, lvh)
        table.to_csv(run_dir / "results_clinical_linear.csv", index=False)
        metrics["test_clinical_linear"] = summarise_results(table, spec)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return RunResult(run_dir, bundle_path, metrics)


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


def evaluate_bundle(bundle_path: str | Path, cohort_path: str | Path, store_path: str | Path | None,
                    out_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """Apply a saved bundle to a cohort and write ``results.csv`` and ``metrics.json`` to ``out_dir``.

    ``split='test'`` re-creates the training run's test split from its seed and checks that it holds the
    same participants (so a changed cohort cannot silently leak training rows into the test set);
    ``split='all'`` evaluates every usable participant (an external cohort).
    """
    bundle = load_bundle(bundle_path)
    spec = bundle.target
    cohort = load_cohort(cohort_path, _required_targets(spec))
    store = Store.open(store_path or Path(cohort_path).parent / "store")
    cohort = usable_cohort(cohort, store)
    frame = cohort.frame
    if split == "test":
        training = bundle.training
        splits = make_splits(frame, spec, int(training["split_seed"]), tuple(training["split_fractions"]))
        if _ids_digest(splits.test) != training.get("test_ids_sha256"):
            raise BundleError(f"{cohort_path}: re-creating the test split of {bundle_path} gave other participants "
                              "than at training time (the cohort changed); use split='all' for a new cohort")
        ids = splits.test
    elif split == "all":
        ids = frame[ID].to_numpy()
    else:
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    leads = bundle.input_spec["leads"]
    check_clinical_columns(bundle, cohort, cohort_path)
    arrays = build_arrays(store, frame, ids, spec, leads, bundle.encoder)
    model = bundle.build_model()
    table, summary = evaluate_arrays(model, arrays, frame, spec, bundle.scaling)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cohort.write_exclusions(out_dir / "exclusions.csv")
    table.to_csv(out_dir / "results.csv", index=False)
    metrics = {"bundle": str(bundle_path), "cohort": str(cohort_path), "split": split, "test": summary}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics



def finetune_run(
    bundle_path: str | Path, cohort_path: str | Path, store_path: str | Path | None, run_dir: str | Path,
    finetune: FinetuneConfig | None = None, seed: int = 0, split_seed: int = 42,
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), criterion: str | None = None,
    progress: bool = True,
) -> RunResult:
    """Fine-tune a saved model on an external cohort by staged unfreezing (the reference's ``--ext_tune``).

    The external cohort gets its own participant split (60/20/20 by default); the model keeps its training
    encoder and target scaling. ``metrics.json`` holds the external test metrics before (``test_untuned``) and
    after (``test``) fine-tuning; the tuned bundle is ``run_dir/model.aiecg``.
    """
    bundle = load_bundle(bundle_path)
    spec = bundle.target
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cohort = load_cohort(cohort_path, _required_targets(spec))
    store = Store.open(store_path or Path(cohort_path).parent / "store")
    cohort = usable_cohort(cohort, store)
    cohort.write_exclusions(run_dir / "exclusions.csv")
    check_clinical_columns(bundle, cohort, cohort_path)
    frame = cohort.frame
    splits = split_participants(frame[ID].to_numpy(), split_seed, split_fractions, stratification_labels(frame, spec))
    splits.save(run_dir)
    leads = bundle.input_spec["leads"]
    arrays = {name: build_arrays(store, frame, ids, spec, leads, bundle.encoder)
              for name, ids in (("train", splits.train), ("val", splits.val), ("test", splits.test))}
    model = bundle.build_model()
    metrics: dict[str, Any] = {"finetuned_from": str(bundle_path), "cohort": str(cohort_path),
                               "split_sizes": {k: len(v) for k, v in arrays.items()}}
    table, metrics["test_untuned"] = evaluate_arrays(model, arrays["test"], frame, spec, bundle.scaling)
    table.to_csv(run_dir / "results_untuned.csv", index=False)
    labels = arrays["train"].target[:, 0].astype(np.int64) if spec.is_categorical else None
    finetune = finetune or FinetuneConfig()
    results = staged_finetune(model, ECGDataset(arrays["train"], bundle.scaling), ECGDataset(arrays["val"],
                              bundle.scaling), make_loss(criterion, spec), FitConfig(seed=seed), finetune, run_dir,
                              progress, labels)
    metrics["stages"] = [{"stage": i, "best_epoch": r.best_epoch, "best_val_loss": r.best_val_loss,
                          "epochs_run": r.epochs_run} for i, r in enumerate(results)]
    for name in ("val", "test"):
        table, metrics[name] = evaluate_arrays(model, arrays[name], frame, spec, bundle.scaling)
        table.to_csv(run_dir / ("results.csv" if name == "test" else f"results_{name}.csv"), index=False)
    tuned = dataclasses.replace(
        bundle, state_dict=model.state_dict(), versions={},
        training={**bundle.training, "finetuned_from": str(bundle_path), "finetune_cohort": str(cohort_path),
                  "split_seed": split_seed, "split_fractions": list(split_fractions),
                  "test_ids_sha256": _ids_digest(splits.test), "finetune": dataclasses.asdict(finetune)},
    )
    bundle_out = save_bundle(tuned, run_dir / "model.aiecg")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return RunResult(run_dir, bundle_out, metrics)
