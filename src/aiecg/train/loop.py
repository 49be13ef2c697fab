"""THE training loop: ``train_one_epoch``, ``validate`` and ``fit`` (Adam, ReduceLROnPlateau, early stopping,
best checkpoint by validation loss), seeded, resumable, with per-epoch metrics written to CSV.

Every random draw of an epoch (shuffling or re-sampling, augmentation, dropout) is seeded from (seed, epoch),
so a run resumed from its last checkpoint ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import copy
import csv
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
from aiecg.files import atomic_write

CHECKPOINT = "checkpoint.pt"
EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")


@dataclass
class FitResult:
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, float]]
    seconds: float
    resumed_from: int = 0


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


def train_one_epoch(
    model: nn.Module, dataset: ECGDataset, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
    config: FitConfig, epoch: int, device: torch.device, labels: np.ndarray | None = None,
) -> float:
    """One pass over the (re-sampled, shuffled, augmented) training set; returns the sample-weighted mean loss."""
    model.train()
    if config.freeze_batchnorm:
        freeze_batchnorm_statistics(model)
    torch.manual_seed(config.seed * 100_003 + epoch)  # dropout
    generator = torch.Generator().manual_seed(config.seed * 100_019 + epoch)  # augmentation
    order = epoch_indices(len(dataset), labels, config.sampling, config.seed, epoch)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    total, count = 0.0, 0
    for ecg, meta, target in iterate_batches(dataset, config.batch_size, order):
        if len(ecg) < 2 and has_batchnorm and not config.freeze_batchnorm:
            continue  # batch norm cannot estimate statistics from one sample
        if config.augment is not None:
            ecg, target = augment_batch(ecg, config.augment, generator, target)
        ecg, meta, target = ecg.to(device), meta.to(device), target.to(device)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device):
            output = model(ecg, meta)
        loss = loss_fn(output.float(), target)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(ecg)
        count += len(ecg)
    return total / max(count, 1)


@torch.no_grad()
def validate(model: nn.Module, dataset: ECGDataset, loss_fn: nn.Module, batch_size: int, device: torch.device) -> float:
    """Mean loss over ``dataset`` in evaluation mode."""
    model.eval()
    total, count = 0.0, 0
    for ecg, meta, target in iterate_batches(dataset, batch_size):
        with _autocast(device):
            output = model(ecg.to(device), meta.to(device))
        total += float(loss_fn(output.float(), target.to(device))) * len(ecg)
        count += len(ecg)
    return total / max(count, 1)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)


def _write_epochs(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EPOCH_COLUMNS)
        writer.writerows([[row[k] for k in EPOCH_COLUMNS] for row in history])


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
) -> FitResult:
    """Train ``model`` in place and leave it holding the weights of the best validation epoch.

    Args:
        model, train, val, loss_fn, config: what to train on what, and how.
        run_dir: where ``epochs.csv`` and the resumable ``checkpoint.pt`` go (None: nowhere).
        progress: show a progress bar.
        labels: class per training row, for ``config.sampling``.
        resume: continue from ``run_dir/checkpoint.pt`` when it exists.
        optimizer: a custom optimizer (e.g. per-group learning rates for fine-tuning); default Adam.
        on_epoch_end: called with the epoch number after its checkpoint is written.
    """
    device = resolve_device(config.device)
    model.to(device)
    loss_fn.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
        )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
    )
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / CHECKPOINT if run_dir is not None else None
    best_state, best_loss, best_epoch, stale, start = copy.deepcopy(model.state_dict()), float("inf"), 0, 0, 1
    history: list[dict[str, float]] = []
    if resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        best_state, best_loss, best_epoch = state["best_state"], float(state["best_loss"]), int(state["best_epoch"])
        stale, history, start = int(state["stale"]), list(state["history"]), int(state["epoch"]) + 1
    resumed_from = start - 1
    started = time.perf_counter()
    finished = stale >= config.early_stopping
    bar = tqdm(total=config.max_epochs, initial=resumed_from, desc="train", unit="epoch", disable=not progress)
    for epoch in range(start, config.max_epochs + 1):
        if finished:
            break
        tic = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(model, train, loss_fn, optimizer, config, epoch, device, labels)
        val_loss = validate(model, val, loss_fn, config.batch_size, device)
        scheduler.step(val_loss)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                        "seconds": time.perf_counter() - tic})
        if val_loss < best_loss:
            best_state, best_loss, best_epoch, stale = copy.deepcopy(model.state_dict()), val_loss, epoch, 0
        else:
            stale += 1
            finished = stale >= config.early_stopping
        if run_dir is not None:
            _write_epochs(run_dir / "epochs.csv", history)
            _save_checkpoint(checkpoint, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "best_state": best_state, "best_loss": best_loss,
                "best_epoch": best_epoch, "stale": stale, "history": history,
            })
        bar.update(1)
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    bar.close()
    model.load_state_dict(best_state)
    return FitResult(best_epoch, best_loss, len(history), history, time.perf_counter() - started, resumed_from)
