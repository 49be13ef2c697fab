"""THE training loop: ``train_one_epoch``, ``validate`` and ``fit`` (Adam, ReduceLROnPlateau, early stopping,
best checkpoint by validation loss), seeded and with per-epoch metrics written to CSV."""

from __future__ import annotations

import copy
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from aiecg.data.dataset import ECGDataset


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings; the defaults are the reference's (Adam 5e-4, batch 32, up to 200 epochs,
    learning rate x0.1 after 10 epochs without improvement, early stop after 20)."""

    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 200
    lr_patience: int = 10
    lr_factor: float = 0.1
    early_stopping: int = 20
    seed: int = 0
    device: str = "cpu"


@dataclass
class FitResult:
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, float]]
    seconds: float


def iterate_batches(
    dataset: ECGDataset, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches straight from the in-memory tensors (one gather per batch, no per-sample Python calls)."""
    n = len(dataset)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        yield dataset.ecg[index], dataset.meta[index], dataset.target[index]


def train_one_epoch(
    model: nn.Module, dataset: ECGDataset, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
    batch_size: int, generator: torch.Generator, device: torch.device,
) -> float:
    """One pass over the shuffled training set; returns the sample-weighted mean loss."""
    model.train()
    total, count = 0.0, 0
    for ecg, meta, target in iterate_batches(dataset, batch_size, shuffle=True, generator=generator):
        ecg, meta, target = ecg.to(device), meta.to(device), target.to(device)
        if len(ecg) < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            continue  # batch norm cannot train on a single sample
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(ecg, meta), target)
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
    for ecg, meta, target in iterate_batches(dataset, batch_size, shuffle=False):
        loss = loss_fn(model(ecg.to(device), meta.to(device)), target.to(device))
        total += float(loss) * len(ecg)
        count += len(ecg)
    return total / max(count, 1)


def fit(
    model: nn.Module,
    train: ECGDataset,
    val: ECGDataset,
    loss_fn: nn.Module,
    config: FitConfig,
    run_dir: str | Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` in place and leave it holding the weights of the best validation epoch.

    Writes ``epochs.csv`` (epoch, train_loss, val_loss, lr, seconds) to ``run_dir`` after every epoch.
    """
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    loss_fn.to(device)
    optimizer = torch.optim.Adam(
        (p for p in model.parameters() if p.requires_grad), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
    )
    csv_path = Path(run_dir) / "epochs.csv" if run_dir is not None else None
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as handle:
            csv.writer(handle).writerow(["epoch", "train_loss", "val_loss", "lr", "seconds"])
    best_state, best_loss, best_epoch, stale = copy.deepcopy(model.state_dict()), float("inf"), 0, 0
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    bar = tqdm(range(1, config.max_epochs + 1), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        tic = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(model, train, loss_fn, optimizer, config.batch_size, generator, device)
        val_loss = validate(model, val, loss_fn, config.batch_size, device)
        scheduler.step(val_loss)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
               "seconds": time.perf_counter() - tic}
        history.append(row)
        if csv_path is not None:
            with open(csv_path, "a", newline="") as handle:
                csv.writer(handle).writerow([row[k] for k in ("epoch", "train_loss", "val_loss", "lr", "seconds")])
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if val_loss < best_loss:
            best_state, best_loss, best_epoch, stale = copy.deepcopy(model.state_dict()), val_loss, epoch, 0
        else:
            stale += 1
            if stale >= config.early_stopping:
                break
    bar.close()
    model.load_state_dict(best_state)
    return FitResult(best_epoch, best_loss, len(history), history, time.perf_counter() - started)
