"""Run orchestration: cohort + store -> splits -> encoder -> model -> fit -> bundle -> predictions -> results.

These functions tie the stages together for the command line and ``train.py``; each stage stays in its module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aiecg import __version__
from aiecg.bundle import Bundle, load_bundle, save_bundle
from aiecg.config import AugmentConfig, FinetuneConfig, FinetuneRunConfig, FitConfig, RunConfig
from aiecg.contract import check_input_kind, input_contract
from aiecg.csvfile import write_csv
from aiecg.data.augment import build_augmentation, for_input_leads
from aiecg.data.cohort import ID, Cohort, load_cohort
from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling, build_arrays, expand_with_beats
from aiecg.data.features import ClinicalEncoder
from aiecg.data.selection import (
    ids_digest,
    lvh_labels,
    make_splits,
    paced_record,
    usable_cohort,
)
from aiecg.data.splits import Splits, check_fractions
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec, target_spec
from aiecg.device import resolve_device
from aiecg.errors import CohortError, ConfigError
from aiecg.evaluate.conformal import fit_conformal
from aiecg.evaluate.posthoc import PostHoc, fit_posthoc
from aiecg.files import atomic_write_text, check_output, file_sha256
from aiecg.models import create_model
from aiecg.models.registry import check_model_input, model_kwargs
from aiecg.predict import predict
from aiecg.runio import partial_dir, run_output
from aiecg.threads import apply_budget, local_world_size
from aiecg.train.distributed import is_main_process
from aiecg.train.finetune import best_stage, staged_finetune
from aiecg.train.loop import FitResult, fit
from aiecg.train.losses import make_loss
from aiecg.train.pretrain import start_from_encoder
from aiecg.workflows.bundled import BundledCohort, open_bundled
from aiecg.workflows.evaluate import evaluate_bundled, results_of

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


@dataclass
class TrainingData:
    """What a run trains on: the usable cohort, its splits, the clinical encoder and target scaling fitted on the
    training split, and the training and validation arrays (the test split's are not loaded here).

    Attributes:
        train: the training samples (with beat expansion, every clean beat of training LVH participants).
        train_participants: the training participants' median beats (what scaling and baselines see).
    """

    spec: TargetSpec
    cohort: Cohort
    store: Store
    splits: Splits
    encoder: ClinicalEncoder | None
    train: Arrays
    train_participants: Arrays
    val: Arrays
    scaling: TargetScaling | None
    labels: np.ndarray | None

    @property
    def frame(self) -> pd.DataFrame:
        return self.cohort.frame

    @classmethod
    def load(cls, config: RunConfig, write_to: Path | None = None) -> TrainingData:
        """Load and split the cohort as ``config`` says; with ``write_to``, record exclusions, splits and the
        encoder there (training writes them, a hyperparameter search does not)."""
        spec = target_spec(config.target)
        cohort = load_cohort(config.cohort, spec.outputs)
        store = Store.open(config.store_path())
        if config.input != "median":
            store.require_strips()  # before anything is written
        cohort = usable_cohort(cohort, store, include_paced=config.include_paced)
        if write_to is not None:
            cohort.write_exclusions(write_to / "exclusions.csv")
            if len(cohort.exclusions):
                shown = config.run_dir if write_to == partial_dir(config.run_dir) else write_to  # where it ends up
                log.warning("%d participants excluded; reasons in %s", len(cohort.exclusions),
                            Path(shown) / "exclusions.csv")
        frame = cohort.frame
        if len(frame) < 10:
            raise CohortError(f"{config.cohort}: only {len(frame)} usable participants; need at least 10 to split")
        splits = make_splits(frame, spec, config.split_seed, config.split_fractions)
        encoder = None
        if not config.excl_meta:
            encoder = ClinicalEncoder(cohort.mapping.clinical).fit(frame.set_index(ID).loc[splits.train].reset_index())
        if write_to is not None:
            splits.save(write_to)
            if encoder is not None:
                atomic_write_text(write_to / "encoder.json", json.dumps(encoder.to_dict(), indent=2, default=float))
        participants = build_arrays(store, frame, splits.train, spec, config.leads, encoder, config.input)
        train = participants
        if config.beat_expansion:
            lvh = frame.set_index(ID)["LVH"].reindex(train.ids).to_numpy() == 1
            train = expand_with_beats(train, store, lvh, config.leads)
            log.info("beat expansion: %d training samples from %d participants", len(train), len(participants))
        scaling = TargetScaling.fit(participants.target) if spec.is_regression else None
        labels = train.target[:, 0].astype(np.int64) if spec.is_categorical else None
        val = build_arrays(store, frame, splits.val, spec, config.leads, encoder, config.input)
        return cls(spec, cohort, store, splits, encoder, train, participants, val, scaling, labels)


def model_and_loss(config: RunConfig, spec: TargetSpec, train_arrays: Arrays, labels: np.ndarray | None,
                   encoder: Bundle | None = None) -> tuple[torch.nn.Module, torch.nn.Module, FitConfig]:
    """The freshly initialised model (seeded by ``fit.seed``), the loss (class-weighted with ``loss_weighting``)
    and the fit settings (default augmentation when ``augment`` is on) of one run: a training run or a search
    trial, set up alike. ``encoder`` is ``config.init`` already loaded (and checked against the store), so a run
    reads it once; without it, it is loaded here.

    Raises:
        TypeError: the architecture does not take one of ``config.model_kwargs``.
    """
    pos_weight, class_weight = class_weights(labels, spec) if config.loss_weighting else (None, None)
    fit_config = config.fit
    if config.augment and fit_config.augment is None:
        fit_config = dataclasses.replace(fit_config, augment=AugmentConfig())
    if fit_config.augment is not None:
        fit_config = dataclasses.replace(fit_config, augment=for_input_leads(fit_config.augment, config.leads))
        build_augmentation(fit_config.augment)  # an unknown augmentation or option: refused before training
    check_run_input(config)
    kwargs = dict(config.model_kwargs)
    if config.input == "both":  # where the median beat ends and the strip begins (aiecg.models.dual)
        if kwargs.setdefault("median_samples", train_arrays.parts[0]) != train_arrays.parts[0]:
            raise ConfigError(f"--model-kwargs median_samples={kwargs['median_samples']}: the joined input's median "
                              f"beat is the store's window of {train_arrays.parts[0]} samples; drop median_samples")
    torch.manual_seed(config.fit.seed)  # model initialisation
    model = create_model(config.arch, len(config.leads), train_arrays.ecg.shape[2], train_arrays.meta.shape[1],
                         spec.n_outputs, **kwargs)
    if config.init:  # the ECG feature blocks of a pre-trained encoder (aiecg pretrain)
        encoder = encoder or load_encoder(config)
        try:
            start_from_encoder(model, encoder.state_dict, freeze=config.freeze_encoder)
        except ValueError as exc:
            raise ConfigError(f"--init {config.init}: {exc}; pre-train with the run's --arch and model settings "
                              f"(the encoder is {encoder.model_name} {encoder.model_kwargs})") from None
        if config.freeze_encoder:  # a linear probe: the frozen blocks' batch-norm statistics stay as pre-trained
            fit_config = dataclasses.replace(fit_config, freeze_batchnorm=True)
    elif config.freeze_encoder:
        raise ConfigError("--freeze-encoder needs --init ENCODER.aiecg (a pre-trained encoder to freeze)")
    return model, make_loss(config.criterion, spec, pos_weight, class_weight), fit_config


def check_run_input(config: RunConfig) -> None:
    """Refuse, before anything is written, an input that is not one of :data:`aiecg.contract.INPUTS`, a model not
    registered for it, and beat expansion of a model that does not read median beats."""
    try:
        check_input_kind(config.input)
        check_model_input(config.arch, config.input)
    except ValueError as exc:
        raise ConfigError(f"--input {config.input}: {exc}") from None
    if config.staged_unfreezing:
        if not config.init:
            raise ConfigError("--staged-unfreezing needs --init ENCODER.aiecg (a pre-trained encoder to unfreeze)")
        if config.freeze_encoder:
            raise ConfigError("--staged-unfreezing unfreezes the encoder block by block; --freeze-encoder keeps it "
                              "frozen: choose one")
        if config.resume:
            raise ConfigError("--staged-unfreezing runs cannot resume (each stage starts from the best of the one "
                              "before); start the run again without --resume")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--staged-unfreezing runs in one process; start it without torchrun")
    if config.beat_expansion and config.input != "median":
        raise ConfigError(f"--beat-expansion adds individual beats as median-beat samples; --input {config.input} "
                          "reads rhythm strips, which have no beat-sized samples to add: drop --beat-expansion")


def unfreezing_schedule(fit_config: FitConfig) -> FinetuneConfig:
    """Gradual unfreezing of a model started from an encoder (``--staged-unfreezing``): the new head at the run's
    learning rate, the last block at a tenth of it, each deeper block at half the one above (discriminative
    learning rates, Howard & Ruder, ACL 2018), the run's weight decay, each stage up to ``max_epochs`` with its
    early stopping."""
    return FinetuneConfig(head_lr=fit_config.lr, head_weight_decay=fit_config.weight_decay,
                          block_lr=fit_config.lr / 10, block_weight_decay=fit_config.weight_decay, depth_decay=0.5,
                          max_epochs_per_stage=fit_config.max_epochs, early_stopping=fit_config.early_stopping)


def stages_as_one(stages: list[FitResult]) -> FitResult:
    """The stages of a staged run as one training: epochs counted across stages, the best where the kept weights
    (the best stage's best epoch, :func:`aiecg.train.finetune.best_stage`) were found."""
    kept = best_stage(stages)
    before = sum(stage.epochs_run for stage in stages[:kept])
    return FitResult(best_epoch=before + stages[kept].best_epoch, best_val_loss=stages[kept].best_val_loss,
                     epochs_run=sum(stage.epochs_run for stage in stages),
                     history=[row for s in stages for row in s.history],
                     seconds=sum(stage.seconds for stage in stages), start_val_loss=stages[0].start_val_loss)


def _share(labels: np.ndarray | None) -> float | None:
    """The share of 1s among the known labels (None without labels)."""
    return float(np.nanmean(labels)) if labels is not None and np.isfinite(labels).any() else None


def load_encoder(config: RunConfig, store: Store | None = None) -> Bundle:
    """The pre-trained encoder of ``config.init``; with ``store``, checked against the store's input contract."""
    encoder = load_bundle(config.init, allow_encoder=True)
    if not encoder.is_encoder:
        log.info("--init %s is a trained model, not an encoder: its ECG feature blocks start this run", config.init)
    if store is not None:
        if encoder.input_kind != config.input:
            raise ConfigError(f"--init {config.init} reads {encoder.input_kind} input, this run --input "
                              f"{config.input}; start from a model of the same input (aiecg pretrain --input "
                              f"{config.input}, where it reads one input) or drop --init")
        encoder.check_input(input_contract(config.leads, store.manifest, config.input), f"--init {config.init}",
                            "pre-train on stores prepared like this cohort's, with the run's --leads")
    return encoder


def train_run(config: RunConfig, progress: bool = True) -> RunResult:
    """Train one model as configured and evaluate it on its validation and test splits.

    Writes to ``config.run_dir``, as one set (:func:`aiecg.runio.run_output`): ``config.yaml``,
    ``exclusions.csv``, ``splits.json`` and the id lists, ``encoder.json``, ``epochs.csv``, ``model.aiecg`` (the
    bundle), ``results.csv`` (test), ``results_val.csv`` and ``metrics.json``.
    """
    spec = target_spec(config.target)
    if spec.is_regression and (config.fit.sampling != "none" or config.loss_weighting):
        raise ConfigError(f"--sampling and --loss-weighting rebalance classes; target {spec.name} is "
                          "continuous (use --criterion tail to weight rare high values)")
    resolve_device(config.fit.device)  # no GPU for --device cuda: before anything is written
    check_fractions(config.split_fractions)
    check_run_input(config)
    with run_output(config.run_dir, resume=config.resume, writer=is_main_process()) as work:
        result = _train_into(work, config, spec, progress)
    return dataclasses.replace(result, run_dir=config.run_dir, bundle_path=config.run_dir / "model.aiecg")


def _train_into(run_dir: Path, config: RunConfig, spec: TargetSpec, progress: bool) -> RunResult:
    """:func:`train_run`, writing into ``run_dir`` (the run's partial folder)."""
    main = is_main_process()  # under torchrun only rank 0 writes (issue 15)
    # the thread budget, divided between torchrun's ranks on this node; config.yaml records the value used
    config = config.override(fit__threads=apply_budget(config.fit.threads, workers=local_world_size()))
    if main:
        check_output(run_dir)
        config.save(run_dir / "config.yaml")
    data = TrainingData.load(config, write_to=run_dir if main else None)
    # read once, and refused here when its leads, sampling or filters are not the store's: before training
    init = load_encoder(config, data.store) if config.init else None
    store, splits, encoder = data.store, data.splits, data.encoder
    scaling, labels, train_arrays = data.scaling, data.labels, data.train
    arrays = {"train": data.train_participants, "val": data.val}  # the test split is loaded for evaluation
    model, loss, fit_config = model_and_loss(config, spec, train_arrays, labels, init)
    train_set, val_set = ECGDataset(train_arrays, scaling), ECGDataset(arrays["val"], scaling)
    if config.staged_unfreezing:
        stages = staged_finetune(model, train_set, val_set, loss, fit_config, unfreezing_schedule(config.fit),
                                 run_dir, progress, labels, lr_flags="--lr")
        result = stages_as_one(stages)
    else:
        result = fit(model, train_set, val_set, loss, fit_config, run_dir, progress, labels=labels,
                     resume=config.resume)
    if not main:  # the other ranks' work ends with training; rank 0 evaluates and writes
        return RunResult(run_dir, run_dir / "model.aiecg", {})

    train_lvh = lvh_labels(data.cohort.frame, splits.train)  # the training split's LVH share, for the bundle
    model_prevalence = None
    if spec.kind.value == "binary":  # the LVH share the model's probabilities reflect
        balanced = config.fit.sampling != "none" or config.loss_weighting
        model_prevalence = 0.5 if balanced else float(np.mean(labels))
    bundle = Bundle(
        model_name=config.arch, model_kwargs=model_kwargs(model), n_leads=len(config.leads),
        n_samples=train_arrays.ecg.shape[2], n_meta=train_arrays.meta.shape[1], n_outputs=spec.n_outputs,
        target=spec, input_spec=input_contract(config.leads, store.manifest, config.input,
                                                   include_paced=paced_record(config.include_paced, store)),
        state_dict=model.state_dict(),
        encoder=encoder, scaling=scaling,
        training={"cohort": str(config.cohort), "cohort_name": data.cohort.mapping.name,
                  "lvh_prevalence": float(np.nanmean(train_lvh)) if train_lvh is not None else None,
                  "split_seed": config.split_seed,
                  "split_fractions": list(config.split_fractions), "test_ids_sha256": ids_digest(splits.test),
                  "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
                  "n_train_samples": len(train_arrays), "criterion": config.criterion,
                  "sampling": config.fit.sampling, "loss_weighting": config.loss_weighting,
                  "augment": fit_config.augment is not None, "beat_expansion": config.beat_expansion,
                  "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                  "epochs_run": result.epochs_run, "seconds": result.seconds, "aiecg": __version__,
                  **({"init": str(config.init), "init_sha256": file_sha256(config.init),
                      "freeze_encoder": config.freeze_encoder, "staged_unfreezing": config.staged_unfreezing}
                     if config.init else {})},
    )
    bundled = BundledCohort(bundle, run_dir / "model.aiecg", config.cohort, data.cohort, store, tuple(spec.outputs))
    metrics = finish_training(bundled, model, splits, arrays["val"], run_dir, config.fit.device, model_prevalence,
                              config.target_prevalence, config.recalib, compare=config.compare, seed=config.fit.seed,
                              criteria_options=config.criteria_options())
    metrics.update({"bundle": str(config.run_dir / "model.aiecg"), "run": config.name, "arch": config.arch,
                    "clinical_features": encoder.feature_names if encoder else [], "training": bundle.training})
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))
    return RunResult(run_dir, bundled.bundle_path, metrics)


def finish_training(bundled: BundledCohort, model: torch.nn.Module, splits: Splits, val: Arrays, run_dir: Path,
                    device: str, model_prevalence: float | None, target_prevalence: float | None, recalibrate: bool,
                    compare: bool = True, seed: int = 0,
                    criteria_options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The end of a training or fine-tuning run: the post-hoc models and thresholds and (for a continuous
    target) the split-conformal intervals fitted on the validation split, the bundle saved to
    ``bundled.bundle_path``, ``results_val.csv``, and the test split evaluated with the model in memory.

    Args:
        model_prevalence: the LVH share the model's probabilities reflect (binary targets).
        target_prevalence: the prevalence to state PPV/NPV at (default: the training split's LVH share).
    """
    bundle, spec, frame = bundled.bundle, bundled.spec, bundled.frame
    val_pred = predict(model, val.ecg, val.meta, spec, bundle.scaling, device=device)
    train_lvh = lvh_labels(frame, splits.train)
    target_prevalence = target_prevalence or (float(np.nanmean(train_lvh)) if train_lvh is not None else None)
    posthoc = fit_posthoc(spec, val_pred, val.is_male, lvh_labels(frame, splits.val), val.target,
                          model_prevalence, target_prevalence, recalibrate=recalibrate)
    bundle.state_dict = model.state_dict()
    bundle.thresholds = {"posthoc": posthoc.to_dict()}
    if spec.is_regression:  # issue 12: split-conformal prediction intervals (evaluate/conformal.py)
        bundle.thresholds["conformal"] = fit_conformal(val.target, val_pred, spec.outputs,
                                                       is_male=val.is_male).to_dict()
    save_bundle(bundle, bundled.bundle_path)
    write_csv(results_of(spec, val, val_pred, frame, posthoc), run_dir / "results_val.csv")
    return evaluate_bundled(bundled, splits.test, run_dir, "test", splits, model=model, compare=compare, seed=seed,
                            criteria_options=criteria_options)


def finetune_run(config: FinetuneRunConfig, progress: bool = True) -> RunResult:
    """Fine-tune a saved model on an external cohort by staged unfreezing (the reference's ``--ext_tune``).

    The external cohort gets its own participant split (60/20/20 by default); the model keeps its training
    encoder and target scaling, and the store must match the bundle's input contract. Writes ``config.yaml``
    (the resolved configuration); ``metrics.json`` holds the external test metrics before (``test_untuned``) and
    after (``test``) fine-tuning; the tuned bundle is ``out/model.aiecg``.
    """
    if not config.bundle or not config.cohort or not config.out:
        raise ConfigError("fine-tuning needs --bundle, --cohort and --out")
    resolve_device(config.device)
    check_fractions(config.split_fractions)
    source, out = Path(config.bundle).resolve(), Path(config.out).resolve()
    if out == source.parent or out in source.parents:
        raise ConfigError(f"--out {config.out} holds the bundle being fine-tuned ({config.bundle}); the finished "
                          "run replaces that folder, so write the fine-tuned model to another folder")
    bundle = load_bundle(config.bundle)
    with run_output(config.out, keep_if=None) as work:
        result = _finetune_into(work, bundle, config, progress)
    return dataclasses.replace(result, run_dir=Path(config.out), bundle_path=Path(config.out) / "model.aiecg")


def _finetune_into(run_dir: Path, bundle: Bundle, config: FinetuneRunConfig, progress: bool) -> RunResult:
    """:func:`finetune_run`, writing into ``run_dir`` (the run's partial folder)."""
    spec = bundle.target
    check_output(run_dir)
    config = dataclasses.replace(config, threads=apply_budget(config.threads))  # config.yaml records the value used
    config.save(run_dir / "config.yaml")
    bundled = open_bundled(bundle, config.cohort, config.store_path(), bundle_path=config.bundle)
    bundled.cohort.write_exclusions(run_dir / "exclusions.csv")
    splits = make_splits(bundled.frame, spec, config.split_seed, config.split_fractions)
    splits.save(run_dir)
    arrays = {name: bundled.arrays(ids) for name, ids in (("train", splits.train), ("val", splits.val))}
    model = bundle.build_model()
    untuned = evaluate_bundled(bundled, splits.test, run_dir / "untuned", "ids", None, model=model, compare=False,
                               seed=config.seed)
    labels = arrays["train"].target[:, 0].astype(np.int64) if spec.is_categorical else None
    fit_config = FitConfig(seed=config.seed, device=config.device, threads=config.threads,
                           batch_size=config.batch_size)
    results = staged_finetune(model, ECGDataset(arrays["train"], bundle.scaling), ECGDataset(arrays["val"],
                              bundle.scaling), make_loss(config.criterion, spec), fit_config, config.finetune,
                              run_dir, progress, labels)
    old = PostHoc.from_dict(bundle.thresholds.get("posthoc"))
    tuned = dataclasses.replace(
        bundle, versions={},
        training={**bundle.training, "finetuned_from": str(config.bundle), "finetune_cohort": str(config.cohort),
                  "finetune_n_train": len(splits.train), "finetune_lvh_prevalence": _share(
                      lvh_labels(bundled.frame, splits.train)),
                  "split_seed": config.split_seed, "split_fractions": list(config.split_fractions),
                  "test_ids_sha256": ids_digest(splits.test), "finetune": dataclasses.asdict(config.finetune)},
    )
    bundle_out = run_dir / "model.aiecg"
    tuned_cohort = dataclasses.replace(bundled, bundle=tuned, bundle_path=bundle_out)
    metrics = finish_training(tuned_cohort, model, splits, arrays["val"], run_dir, config.device,
                              old.model_prevalence, config.target_prevalence, old.recalibration is not None,
                              seed=config.seed)
    metrics.update({"bundle": str(Path(config.out) / "model.aiecg"), "finetuned_from": str(config.bundle),
                    "test_untuned": untuned["test"],
                    "kept_stage": best_stage(results),
                    "stages": [{"stage": i, "best_epoch": r.best_epoch, "best_val_loss": r.best_val_loss,
                                "epochs_run": r.epochs_run} for i, r in enumerate(results)]})
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))
    return RunResult(run_dir, bundle_out, metrics)
