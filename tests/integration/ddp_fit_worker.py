"""Started by torchrun from test_distributed.py: ``fit`` on a toy set (``python ddp_fit_worker.py OUT N_TRAIN
[EPOCHS [then-resume]]``). Each rank saves the rows it trained on (all, and those of epoch 1) and its final weights
to OUT/rank{RANK}.pt, and rank 0 copies the run folder as it stood after epoch 1 to OUT/epoch1 (a run stopped
there). With ``then-resume`` the same ranks then continue a copy of OUT/epoch1 in OUT/cut/run from its checkpoint,
as a restarted run does, and save OUT/cut/rank{RANK}.pt."""

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from aiecg.data.dataset import Arrays, ECGDataset
from aiecg.models import create_model
from aiecg.train.loop import FitConfig, fit
from aiecg.train.losses import LogCoshLoss


def toy(n: int, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, n).astype(np.float32)
    ecg = y[:, None, None] * np.hanning(64)[None, None, :] + 0.1 * rng.standard_normal((n, 2, 64))
    return Arrays(np.arange(n).astype(str), np.zeros(n, int), ecg.astype(np.float32),
                  rng.standard_normal((n, 3)).astype(np.float32), y[:, None])


def train(out: Path, n_train: int, epochs: int, resume: bool) -> None:
    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = create_model("fcn", 2, 64, 3, 1, filters=(8, 8, 8), kernels=(5, 3, 3), conv_dropout=0.2,
                         head_dropout=0.3)
    seen: list[np.ndarray] = []
    rank = os.environ.get("RANK", "0")
    first_epoch: list[np.ndarray] = []

    def after_epoch(epoch: int) -> None:  # called once the epoch's checkpoint is written
        if epoch == 1:
            first_epoch.extend(seen)
            if rank == "0":
                shutil.copytree(out / "run", out / "epoch1")

    config = FitConfig(lr=1e-2, batch_size=16, max_epochs=epochs, seed=4, sampling="none")
    result = fit(model, ECGDataset(toy(n_train, 0)), ECGDataset(toy(21, 1)), LogCoshLoss(), config,
                 out / "run", progress=False, seen=seen, resume=resume, on_epoch_end=after_epoch)
    torch.save({"seen": np.concatenate(seen), "seen_epoch1": np.concatenate(first_epoch) if first_epoch else None,
                "state": model.state_dict(), "val_loss": result.best_val_loss,
                "train_loss": result.history[-1]["train_loss"]}, out / f"rank{rank}.pt")


def main(out: Path, n_train: int, epochs: int = 1, then_resume: bool = False) -> None:
    train(out, n_train, epochs, resume=False)
    if then_resume:
        if os.environ.get("RANK", "0") == "0":
            shutil.copytree(out / "epoch1", out / "cut" / "run")
        torch.distributed.barrier()  # every rank reads the copied checkpoint
        train(out / "cut", n_train, epochs, resume=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1,
         len(sys.argv) > 4 and sys.argv[4] == "then-resume")
