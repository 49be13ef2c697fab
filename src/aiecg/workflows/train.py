"""Run orchestration: cohort + store -> splits -> encoder -> model -> fit -> bundle -> predictions -> results.

These functions tie the stages together for the command line and ``train.py``; each stage stays in its module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiecg import __version__
from aiecg.bundle import Bundle, load_bundle, save_bundle
from aiecg.config import RunConfig
from aiecg.data.augment import AugmentConfig
from aiecg.data.cohort import ID, load_cohort
from aiecg.data.dataset import ECGDataset, TargetScaling, build_arrays, expand_with_beats
from aiecg.data.features import ClinicalEncoder
from aiecg.data.selection import check_clinical_columns, ids_digest, lvh_labels, make_splits, usable_cohort
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec, target_spec
from aiecg.errors import CohortError, ConfigError
from aiecg.evaluate.conformal import fit_conformal
from aiecg.evaluate.evaluation import build_results
from aiecg.evaluate.posthoc import PostHoc, fit_posthoc
from aiecg.models import create_model
from aiecg.predict import predict
from aiecg.train.finetune import FinetuneConfig, staged_finetune
from aiecg.train.loop import FitConfig, fit
from aiecg.train.losses import make_loss
from aiecg.workflows.evaluate import evaluate_bundle

log = logging.getLogger("aiecg")


@dataclass
class RunResult:
    run_dir: Path
    bundle_path: Path
    metrics: dict[str, Any]


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


def train_run(config: RunConfig, progress: bool = True) -> RunResult:
    """Train one model as configured and evaluate it on its validation and test splits.

    Writes to ``config.run_dir``: ``config.yaml``, ``exclusions.csv``, ``splits.json`` and the id lists,
    ``encoder.json``, ``epochs.csv``, ``model.aiecg`` (the bundle), ``results.csv`` (test),
    ``results_val.csv`` and ``metrics.json``.
    """
    spec = target_spec(config.target)
    if spec.is_regression and (config.fit.sampling != "none" or config.loss_weighting):
        raise ConfigError(f"--sampling and --loss-weighting rebalance classes; target {spec.target.value} is "
                          "continuous (use --criterion tail to weight rare high values)")
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")
    cohort = load_cohort(config.cohort, spec.outputs)
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
    val_pred = predict(model, arrays["val"].ecg, arrays["val"].meta, spec, scaling, device=config.fit.device)
    train_lvh = lvh_labels(frame, splits.train)
    model_prevalence = None
    if spec.kind.value == "binary":  # the LVH share the model's probabilities reflect
        balanced = config.fit.sampling != "none" or config.loss_weighting
        model_prevalence = 0.5 if balanced else float(np.mean(labels))
    target_prevalence = config.target_prevalence or (float(np.nanmean(train_lvh)) if train_lvh is not None else None)
    posthoc = fit_posthoc(spec, val_pred, arrays["val"].is_male, lvh_labels(frame, splits.val), arrays["val"].target,
                          model_prevalence, target_prevalence, recalibrate=config.recalib)
    bundle = Bundle(
        model_name=config.arch, model_kwargs=config.model_kwargs, n_leads=len(config.leads),
        n_samples=train_arrays.ecg.shape[2], n_meta=train_arrays.meta.shape[1], n_outputs=spec.n_outputs,
        target=spec, input_spec=input_spec, state_dict=model.state_dict(), encoder=encoder, scaling=scaling,
        thresholds={"posthoc": posthoc.to_dict()},
        training={"cohort": str(Path(config.cohort).resolve()), "split_seed": config.split_seed,
                  "split_fractions": list(config.split_fractions), "test_ids_sha256": ids_digest(splits.test),
                  "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
                  "n_train_samples": len(train_arrays), "criterion": config.criterion,
                  "sampling": config.fit.sampling, "loss_weighting": config.loss_weighting,
                  "augment": fit_config.augment is not None, "beat_expansion": config.beat_expansion,
                  "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                  "epochs_run": result.epochs_run, "seconds": result.seconds, "aiecg": __version__},
    )
    # issue 12: split-conformal prediction intervals, calibrated on the validation split (evaluate/conformal.py)
    if spec.is_regression:
        bundle.thresholds["conformal"] = fit_conformal(arrays["val"].target, val_pred, spec.outputs).to_dict()
    bundle_path = save_bundle(bundle, run_dir / "model.aiecg")
    build_results(spec, arrays["val"], val_pred, frame, posthoc).to_csv(run_dir / "results_val.csv", index=False)
    metrics = evaluate_bundle(bundle_path, config.cohort, config.store_path(), run_dir, split="test",
                              compare=config.compare, seed=config.fit.seed)
    metrics.update({"run": config.name, "arch": config.arch,
                    "clinical_features": encoder.feature_names if encoder else [], "training": bundle.training})
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return RunResult(run_dir, bundle_path, metrics)


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
    cohort = load_cohort(cohort_path, spec.outputs)
    store = Store.open(store_path or Path(cohort_path).parent / "store")
    cohort = usable_cohort(cohort, store)
    cohort.write_exclusions(run_dir / "exclusions.csv")
    check_clinical_columns(bundle, cohort, cohort_path)
    frame = cohort.frame
    splits = make_splits(frame, spec, split_seed, split_fractions)
    splits.save(run_dir)
    leads = bundle.input_spec["leads"]
    arrays = {name: build_arrays(store, frame, ids, spec, leads, bundle.encoder)
              for name, ids in (("train", splits.train), ("val", splits.val), ("test", splits.test))}
    model = bundle.build_model()
    untuned = evaluate_bundle(bundle_path, cohort_path, store.root, run_dir / "untuned", ids=splits.test, compare=False,
                              seed=seed)
    labels = arrays["train"].target[:, 0].astype(np.int64) if spec.is_categorical else None
    finetune = finetune or FinetuneConfig()
    results = staged_finetune(model, ECGDataset(arrays["train"], bundle.scaling), ECGDataset(arrays["val"],
                              bundle.scaling), make_loss(criterion, spec), FitConfig(seed=seed), finetune, run_dir,
                              progress, labels)
    old = PostHoc.from_dict(bundle.thresholds.get("posthoc"))
    val_pred = predict(model, arrays["val"].ecg, arrays["val"].meta, spec, bundle.scaling)
    train_lvh = lvh_labels(frame, splits.train)
    posthoc = fit_posthoc(spec, val_pred, arrays["val"].is_male, lvh_labels(frame, splits.val), arrays["val"].target,
                          old.model_prevalence, float(np.nanmean(train_lvh)) if train_lvh is not None else None,
                          recalibrate=old.recalibration is not None)
    tuned = dataclasses.replace(
        bundle, state_dict=model.state_dict(), versions={}, thresholds={"posthoc": posthoc.to_dict()},
        training={**bundle.training, "finetuned_from": str(bundle_path), "finetune_cohort": str(cohort_path),
                  "split_seed": split_seed, "split_fractions": list(split_fractions),
                  "test_ids_sha256": ids_digest(splits.test), "finetune": dataclasses.asdict(finetune)},
    )
    # issue 12: split-conformal intervals re-calibrated on the external validation split
    if spec.is_regression:
        tuned.thresholds["conformal"] = fit_conformal(arrays["val"].target, val_pred, spec.outputs).to_dict()
    bundle_out = save_bundle(tuned, run_dir / "model.aiecg")
    build_results(spec, arrays["val"], val_pred, frame, posthoc).to_csv(run_dir / "results_val.csv", index=False)
    metrics = evaluate_bundle(bundle_out, cohort_path, store.root, run_dir, split="test", seed=seed)
    metrics.update({"finetuned_from": str(bundle_path), "test_untuned": untuned["test"],
                    "stages": [{"stage": i, "best_epoch": r.best_epoch, "best_val_loss": r.best_val_loss,
                                "epochs_run": r.epochs_run} for i, r in enumerate(results)]})
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return RunResult(run_dir, bundle_out, metrics)
