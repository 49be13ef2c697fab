"""``aiecg tune``: a hyperparameter search over one cohort, then the best setting retrained and tested once.

The search loads the training and validation splits only: trials are trained on the training split, pruned and
ranked on the validation loss, and never see a test participant. ``finalise`` retrains the best trial's setting
with :func:`aiecg.workflows.train.train_run` (same seed, so the same weights as the trial) and evaluates it once
on the test split.

Output directory: ``tune.yaml`` (the search), ``study.db`` (default storage), ``trials.csv``,
``importance.csv``, ``best.json`` and ``best/`` (the retrained run with its bundle and test metrics).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from aiecg.bundle import Bundle
from aiecg.config import RunConfig
from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling
from aiecg.data.targets import TargetSpec, target_spec
from aiecg.errors import ConfigError, TrainingDiverged
from aiecg.files import atomic_write_text
from aiecg.threads import apply_budget
from aiecg.train import hpo
from aiecg.train.distributed import current_world
from aiecg.train.loop import fit
from aiecg.workflows.train import TrainingData, load_encoder, model_and_loss, train_run

log = logging.getLogger("aiecg")


@dataclass
class TuneConfig:
    """One search.

    Attributes:
        base: the run every trial starts from (cohort, target, arch, fit settings, ...).
        out: the search's directory.
        space: a YAML search space (None: the reference's; with ``--init`` without the settings that would
            change the encoder's architecture).
        n_trials: finished (complete or pruned) trials the study ends with, over all workers.
        max_epochs: epochs per trial at most (Hyperband's maximum resource).
        storage: study storage URL (None: ``sqlite:///OUT/study.db``).
        study: the study's name; workers with the same storage and name share it.
        pruner: 'hyperband', 'halving' or 'none'.
        worker: this worker's number (seeds its sampler; use a distinct one per worker).
        heartbeat: seconds between heartbeats; a trial silent for 4 heartbeats is re-queued.
    """

    base: RunConfig
    out: Path = Path("runs/tune")
    space: str | None = None
    n_trials: int = 50
    max_epochs: int = 125
    storage: str | None = None
    study: str = "aiecg-tune"
    pruner: str = "hyperband"
    worker: int = 0
    heartbeat: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(Path(self.out) / 'study.db').resolve()}"


@dataclass
class SearchData:
    """The training and validation inputs of a search, loaded once per worker (no test rows)."""

    spec: TargetSpec
    train: Arrays
    val: Arrays
    scaling: TargetScaling | None
    labels: np.ndarray | None
    test_ids: list[str]
    encoder: Bundle | None = None  # the pre-trained encoder of --init, read once and checked against the store

    @classmethod
    def load(cls, config: RunConfig) -> SearchData:
        data = TrainingData.load(config)  # writes nothing and loads no test arrays
        encoder = load_encoder(config, data.store) if config.init else None
        return cls(data.spec, data.train, data.val, data.scaling, data.labels, list(data.splits.test), encoder)


def _check(config: TuneConfig, spec: TargetSpec, space: list[hpo.Param]) -> None:
    if config.n_trials < 1 or config.max_epochs < 1:
        raise ConfigError("--trials and --epochs must be at least 1")
    if config.base.staged_unfreezing:
        raise ConfigError("--staged-unfreezing is not searched: trials train in one stage; search with --init (full "
                          "fine-tuning) or --freeze-encoder, then train the chosen setting with --staged-unfreezing")
    if spec.is_regression:
        rebalancing = [p.name for p in space if p.name in ("sampling", "loss_weighting")]
        if rebalancing:
            raise ConfigError(f"search space: {rebalancing} rebalance classes; target {spec.name} is "
                              "continuous (remove them from the space)")


def check_corners(data: SearchData, config: TuneConfig, space: list[hpo.Param]) -> None:
    """Build what a trial builds (model, loss, optimiser, scheduler) at every choice and both ends of every range,
    with each searched architecture, so that a setting no trial could run is one error before any trial, not a
    failure at the first trial that draws it."""
    import torch

    from aiecg.data.sampling import epoch_indices
    from aiecg.train.loop import make_optimizer

    archs = next((p.choices for p in space if p.name == "arch"), (config.base.arch,))
    for param in space:
        for value in param.corners():
            for arch in (value,) if param.name == "arch" else archs:
                run = hpo.apply_params(config.base, {"arch": arch, param.name: value})
                try:
                    if not (run.fit.lr > 0 and isinstance(run.fit.batch_size, int) and run.fit.batch_size >= 1):
                        raise ValueError("the learning rate must be > 0 and the batch size a whole number >= 1")
                    model, _, fit = model_and_loss(run, data.spec, data.train, data.labels, data.encoder)
                    optimizer = make_optimizer(model, fit)
                    torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=fit.lr_factor,
                                                               patience=fit.lr_patience)
                    epoch_indices(len(data.train), data.labels, fit.sampling, fit.seed, 1)
                except (TypeError, ValueError, ConfigError) as exc:
                    with_arch = "" if param.name == "arch" else f" with arch {arch!r}"
                    raise ConfigError(f"search space: {param.name} = {value!r} cannot be trained{with_arch} "
                                      f"({str(exc).splitlines()[0]}); change its range or choices") from None


def objective_for(data: SearchData, config: TuneConfig, space: list[hpo.Param]) -> Any:
    """The Optuna objective: train one trial's setting, report the validation loss each epoch (the pruner may
    stop it), return the best validation loss."""
    import optuna

    base = dataclasses.replace(config.base, fit=dataclasses.replace(config.base.fit, max_epochs=config.max_epochs))

    def objective(trial: optuna.Trial) -> float:
        run = hpo.apply_params(base, {p.name: p.suggest(trial) for p in space})
        try:
            model, loss, fit_config = model_and_loss(run, data.spec, data.train, data.labels, data.encoder)
        except TypeError as exc:  # a model setting of the space that this architecture does not take
            raise ConfigError(f"search space: model {run.arch!r} rejects {run.model_kwargs} ({exc}); "
                              "search only settings of the searched architectures") from None

        def report(row: dict[str, float]) -> None:
            trial.report(row["val_loss"], int(row["epoch"]))
            if not math.isfinite(row["val_loss"]) or trial.should_prune():
                raise optuna.TrialPruned(f"epoch {int(row['epoch'])}: validation loss {row['val_loss']:.4f}")

        try:
            result = fit(model, ECGDataset(data.train, data.scaling), ECGDataset(data.val, data.scaling), loss,
                         fit_config, None, progress=False, labels=data.labels, on_validation=report)
        except TrainingDiverged as exc:  # this setting diverges: the search goes on without it
            raise optuna.TrialPruned(str(exc)) from None
        trial.set_user_attr("best_epoch", result.best_epoch)
        return result.best_val_loss

    return objective


def search(config: TuneConfig, progress: bool = True) -> dict[str, Any]:
    """Join (or create) the study and run trials until it holds ``n_trials`` finished ones; writes trials.csv."""
    hpo.require_optuna()
    import optuna

    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    if current_world().active:
        raise ConfigError("aiecg tune runs its workers as separate processes sharing a --storage, not under "
                          "torchrun (see docs/cluster.md)")
    spec = target_spec(config.base.target)
    space = hpo.load_space(config.space, spec.is_categorical, keep_architecture=bool(config.base.init))
    _check(config, spec, space)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = apply_budget(config.base.fit.threads)  # this search worker's share; tune.yaml records it
    config = dataclasses.replace(config, base=config.base.override(fit__threads=threads))
    describe = {"study": config.study, "storage": config.storage_url(), "n_trials": config.n_trials,
                "max_epochs": config.max_epochs, "pruner": config.pruner,
                "space": {p.name: p.to_dict() for p in space}, "base": config.base.to_dict()}
    data = SearchData.load(config.base)
    check_corners(data, config, space)  # before the study is joined and any trial runs
    atomic_write_text(out / "tune.yaml", yaml.safe_dump(describe, sort_keys=False))
    study = hpo.open_study(config.storage_url(), config.study, space, config.pruner, config.max_epochs,
                           config.base.fit.seed, config.worker)
    ran = hpo.run_worker(study, objective_for(data, config, space), config.n_trials, config.heartbeat,
                         config.worker, log.info)
    table = hpo.write_trials(study, out / "trials.csv")
    return {"study": config.study, "storage": config.storage_url(), "worker": config.worker, "trials_run": ran,
            "finished": int(table["state"].isin(hpo.FINISHED).sum()), "pruned": int((table["state"] == "PRUNED").sum()),
            "trials_csv": str(out / "trials.csv")}


def finalise(config: TuneConfig, progress: bool = True) -> dict[str, Any]:
    """Retrain the best trial's setting (on the training split; the validation split for early stopping and
    thresholds), evaluate it once on the test split, and write trials.csv, importance.csv and best.json."""
    hpo.require_optuna()
    import optuna

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        study = optuna.load_study(study_name=config.study, storage=hpo.open_storage(config.storage_url()))
    except KeyError:
        raise ConfigError(f"no study {config.study!r} in {config.storage_url()}; run the search first") from None
    table = hpo.write_trials(study, out / "trials.csv")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {config.study!r} has no complete trial yet ({len(table)} trials); search first")
    best = min(complete, key=lambda t: t.value)
    for stale in ("best.json", "importance.csv"):  # an earlier finalise's: they would describe another best/
        (out / stale).unlink(missing_ok=True)
    base = dataclasses.replace(config.base, out=str(out), name="best", resume=False,
                               fit=dataclasses.replace(config.base.fit, max_epochs=config.max_epochs))
    result = train_run(hpo.apply_params(base, best.params), progress=progress)  # best/ appears whole (runio)
    importance = hpo.param_importance(study)
    atomic_write_text(out / "importance.csv", "param,importance\n" +
                      "".join(f"{k},{v:.6f}\n" for k, v in importance.items()))
    summary = {"study": config.study, "best_trial": best.number, "params": hpo.clean(best.params),
               "val_loss": best.value, "retrained_val_loss": result.metrics["training"]["best_val_loss"],
               "best_epoch": result.metrics["training"]["best_epoch"], "n_trials": len(table),
               "finished": int(table["state"].isin(hpo.FINISHED).sum()),
               "pruned": int((table["state"] == "PRUNED").sum()), "importance": importance,
               "run_dir": str(result.run_dir), "bundle": str(result.bundle_path), "test": result.metrics["test"]}
    atomic_write_text(out / "best.json", json.dumps(summary, indent=2, default=float))
    return summary
