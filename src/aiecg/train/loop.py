"""THE training loop: ``train_one_epoch``, ``validate`` and ``fit`` (Adam, ReduceLROnPlateau, early stopping,
best checkpoint by validation loss), seeded, resumable, with per-epoch metrics written to CSV.

Every random draw of an epoch (shuffling or re-sampling, augmentation, dropout) is seeded from (seed, epoch),
so a run resumed from its last checkpoint ends with exactly the weights of an uninterrupted run.

The same loop runs in one process or in N processes started by torchrun (:mod:`aiecg.train.distributed`):
each global batch of ``batch_size`` rows is split over the ranks, the loss of each rank is scaled so that the
DDP-averaged gradient is the gradient of the global batch's mean loss, and only rank 0 writes.
"""

from __future__ import annotations

import copy
import csv
import math
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from aiecg.config import FitConfig
from aiecg.data.augment import augment_batch
from aiecg.data.dataset import ECGDataset
from aiecg.data.sampling import epoch_indices
from aiecg.device import resolve_device
from aiecg.errors import BundleError, TrainingDiverged
from aiecg.files import atomic_write, interrupts_held
from aiecg.train import distributed
from aiecg.train.distributed import World

CHECKPOINT = "checkpoint.pt"
OPTIMIZERS = ("adam", "sgd")
EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")


@dataclass
class FitResult:
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, float]]
    seconds: float
    resumed_from: int = 0
    start_val_loss: float = math.nan
    """Validation loss of the model as ``fit`` received it (with ``baseline``; NaN otherwise)."""


def freeze_batchnorm_statistics(model: nn.Module) -> None:
    """Put every batch-norm layer in evaluation mode, so its running statistics stay as they are."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def iterate_batches(
    dataset: ECGDataset, batch_size: int, order: np.ndarray | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches straight from the in-memory tensors (one gather per batch, no per-sample Python calls)."""
    index_all = torch.arange(len(dataset)) if order is None else torch.as_tensor(order, dtype=torch.long)
    for start in range(0, len(index_all), batch_size):
        index = index_all[start : start + batch_size]
        yield dataset.ecg[index], dataset.meta[index], dataset.target[index]


def _autocast(device: torch.device):
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def epoch_batches(order: torch.Tensor, batch_size: int, least: int) -> list[torch.Tensor]:
    """The global batches of an epoch: consecutive slices of ``batch_size`` rows of ``order``. A last slice of
    fewer than ``least`` rows (too few to give every rank the rows batch norm needs) joins the batch before it,
    so every row is trained on once per epoch, in one process as under DDP; only an epoch of fewer than
    ``least`` rows in all has no step. The same on every rank: each must take part in every step."""
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < least:
        batches[-2:] = [torch.cat(batches[-2:])]
    return [batch for batch in batches if len(batch) >= least]


def train_one_epoch(
    model: nn.Module, dataset: ECGDataset, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
    config: FitConfig, epoch: int, device: torch.device, labels: np.ndarray | None = None,
    world: World | None = None, seen: list[np.ndarray] | None = None,
) -> float:
    """One pass over the (re-sampled, shuffled, augmented) training set; returns the sample-weighted mean loss
    (over all ranks). ``model`` may be wrapped in DDP; ``seen`` collects the row indices this rank trained on.
    """
    world = world or World()
    model.train()
    if config.freeze_batchnorm:
        freeze_batchnorm_statistics(model)
    rank_seed = 1_000_003 * world.rank  # 0 in one process: the same draws as before DDP existed
    torch.manual_seed(config.seed * 100_003 + epoch + rank_seed)  # dropout
    generator = torch.Generator().manual_seed(config.seed * 100_019 + epoch + rank_seed)  # augmentation
    order = torch.as_tensor(epoch_indices(len(dataset), labels, config.sampling, config.seed, epoch))
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    smallest = 2 if has_batchnorm and not config.freeze_batchnorm else 1  # batch norm needs two samples
    total, count = 0.0, 0
    for batch in epoch_batches(order, config.batch_size, smallest * world.size):
        index = distributed.shard(batch, world)
        if seen is not None:
            seen.append(index.numpy().copy())
        ecg, meta, target = dataset.ecg[index], dataset.meta[index], dataset.target[index]
        if config.augment is not None:
            ecg, target = augment_batch(ecg, config.augment, generator, target)
        ecg, meta, target = ecg.to(device), meta.to(device), target.to(device)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device):
            output = model(ecg, meta)
        loss = loss_fn(output.float(), target)
        # DDP averages gradients over ranks: weight each rank's mean by its share of the global batch
        (loss * (len(index) * world.size / len(batch)) if world.active else loss).backward()
        optimizer.step()
        total += float(loss.detach()) * len(ecg)
        count += len(ecg)
    total, count = distributed.reduce_sums([total, float(count)], world, device)
    return total / max(count, 1)


@torch.no_grad()
def validate(model: nn.Module, dataset: ECGDataset, loss_fn: nn.Module, batch_size: int, device: torch.device,
             world: World | None = None) -> float:
    """Mean loss over ``dataset`` in evaluation mode (each rank scores every N-th row; the sums are reduced)."""
    world = world or World()
    model.eval()
    order = np.arange(world.rank, len(dataset), world.size)
    total, count = 0.0, 0
    for ecg, meta, target in iterate_batches(dataset, batch_size, order):
        with _autocast(device):
            output = model(ecg.to(device), meta.to(device))
        total += float(loss_fn(output.float(), target.to(device))) * len(ecg)
        count += len(ecg)
    total, count = distributed.reduce_sums([total, float(count)], world, device)
    return total / max(count, 1)


def make_optimizer(model: nn.Module, config: FitConfig) -> torch.optim.Optimizer:
    """Adam or SGD with momentum over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}")


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with interrupts_held(), atomic_write(path, "wb") as handle:  # Ctrl-C waits for the checkpoint, then stops
        torch.save(state, handle)


def _write_epochs(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EPOCH_COLUMNS)
        writer.writerows([[row[k] for k in EPOCH_COLUMNS] for row in history])


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A training checkpoint, loaded without executing any pickled code (``weights_only``).

    Raises:
        BundleError: the file is damaged, or holds code or objects beyond tensors and plain values (a pickle
            payload is refused, never run).
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise BundleError(f"{path}: the checkpoint is damaged or holds objects other than tensors and plain "
                          "values, and was refused (aiecg never runs pickled code); delete it to start the run "
                          "afresh") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise BundleError(f"{path}: damaged checkpoint ({type(exc).__name__}); delete it to start the run afresh"
                          ) from None
    if not isinstance(state, dict):
        raise BundleError(f"{path}: not an aiecg checkpoint; delete it to start the run afresh")
    return state


def fit(
    model: nn.Module,
    train: ECGDataset,
    val: ECGDataset,
    loss_fn: nn.Module,
    config: FitConfig,
    run_dir: str | Path | None = None,
    progress: bool = True,
    labels: np.ndarray | None = None,
    resume: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    on_validation: Callable[[dict[str, float]], None] | None = None,
    seen: list[np.ndarray] | None = None,
    baseline: bool = False,
) -> FitResult:
    """Train ``model`` in place and leave it holding the weights of the best validation epoch.

    A training or validation loss that is NaN or infinite stops the run (:class:`TrainingDiverged`, naming the
    epoch): a diverged model is never returned, and the checkpoint keeps the last finite epoch.

    Args:
        model, train, val, loss_fn, config: what to train on what, and how.
        run_dir: where ``epochs.csv`` and the resumable ``checkpoint.pt`` go (None: nowhere).
        progress: show a progress bar.
        labels: class per training row, for ``config.sampling``.
        resume: continue from ``run_dir/checkpoint.pt`` when it exists.
        optimizer: a custom optimizer (e.g. per-group learning rates for fine-tuning); default Adam.
        on_epoch_end: called with the epoch number after its checkpoint is written.
        on_validation: called with the epoch's history row (epoch, train_loss, val_loss, lr, seconds) after
            ``on_epoch_end``, on every rank; e.g. to report to a pruner, which may stop the run by raising.
        seen: if given, collects the training-row indices of every batch this rank trained on.
        baseline: also score the model as received (``FitResult.start_val_loss``), e.g. the model a fine-tuning
            run must improve on; one more validation pass, no random draw, so the weights are unchanged.

    Started by torchrun, ``fit`` joins the process group itself (:func:`aiecg.train.distributed.setup`); every
    rank returns the same result and the same weights.
    """
    world, device = distributed.setup(resolve_device(config.device))
    model.to(device)
    loss_fn.to(device)
    if optimizer is None:
        optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
    )
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / CHECKPOINT if run_dir is not None else None
    best_state, best_loss, best_epoch, stale, start = copy.deepcopy(model.state_dict()), float("inf"), 0, 0, 1
    history: list[dict[str, float]] = []
    start_loss = math.nan
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, device)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            best_state, best_loss = state["best_state"], float(state["best_loss"])
            best_epoch, stale = int(state["best_epoch"]), int(state["stale"])
            history, start = list(state["history"]), int(state["epoch"]) + 1
            start_loss = float(state.get("start_loss", math.nan))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BundleError(f"{checkpoint}: not a checkpoint of this run ({type(exc).__name__}: {exc}); "
                              "delete it to start the run afresh") from None
    resumed_from = start - 1
    if baseline and start == 1:
        start_loss = validate(model, val, loss_fn, config.batch_size, device, world)
    net = distributed.wrap(model, world, device)
    started = time.perf_counter()
    finished = stale >= config.early_stopping
    bar = tqdm(total=config.max_epochs, initial=resumed_from, desc="train", unit="epoch",
               disable=not progress or not world.is_main)
    for epoch in range(start, config.max_epochs + 1):
        if finished:
            break
        tic = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(net, train, loss_fn, optimizer, config, epoch, device, labels, world, seen)
        distributed.sync_buffers(model, world)
        val_loss = validate(model, val, loss_fn, config.batch_size, device, world)
        for which, value in (("training", train_loss), ("validation", val_loss)):
            if not math.isfinite(value):  # every rank sees the same reduced losses: all stop together
                bar.close()
                raise TrainingDiverged(epoch, which, value, lr)
        scheduler.step(val_loss)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                        "seconds": time.perf_counter() - tic})
        if val_loss < best_loss:
            best_state, best_loss, best_epoch, stale = copy.deepcopy(model.state_dict()), val_loss, epoch, 0
        else:
            stale += 1
            finished = stale >= config.early_stopping
        if run_dir is not None and world.is_main:
            _write_epochs(run_dir / "epochs.csv", history)
            _save_checkpoint(checkpoint, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "best_state": best_state, "best_loss": best_loss,
                "best_epoch": best_epoch, "stale": stale, "history": history, "start_loss": start_loss,
            })
        bar.update(1)
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if on_validation is not None:
            on_validation(history[-1])
    bar.close()
    model.load_state_dict(best_state)
    return FitResult(best_epoch, best_loss, len(history), history, time.perf_counter() - started, resumed_from,
                     start_loss)
