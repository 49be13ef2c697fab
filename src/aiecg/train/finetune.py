"""Staged fine-tuning on an external cohort (the reference's ``--ext_tune``), generic for every model.

Stage 0 trains the head alone; stage k additionally unfreezes the k-th block counted from the output. Each stage
runs until early stopping and starts from the best weights so far; the model returned holds the best weights of
all stages (a later stage that never beats an earlier one's validation loss does not replace it). Batch-norm
running statistics stay fixed throughout (the external cohort is small). Learning rates follow the reference: the
head 5e-5 with weight decay 1e-4, the blocks 1e-4 with weight decay 1e-5, scaled down by ``depth_decay`` per block
further from the output, so deeper (more generic) features move least.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aiecg.config import FinetuneConfig, FitConfig
from aiecg.data.dataset import ECGDataset
from aiecg.errors import TrainingDiverged, TrainingError
from aiecg.models.heads import ECGModel
from aiecg.train.loop import FitResult, fit

LR_FLAGS = "--head-lr / --block-lr"


def set_trainable_stage(model: ECGModel, stage: int) -> list[list[nn.Parameter]]:
    """Freeze everything, then unfreeze the head (stage 0) and the ``stage`` blocks nearest the output.

    Returns the trainable parameter groups, head first.
    """
    groups = model.parameter_groups()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable = groups[: stage + 1]
    for group in trainable:
        for parameter in group:
            parameter.requires_grad_(True)
    return trainable


def stage_optimizer(groups: list[list[nn.Parameter]], config: FinetuneConfig) -> torch.optim.Optimizer:
    """Adam with the head's and each block's own learning rate and weight decay."""
    param_groups = [{"params": groups[0], "lr": config.head_lr, "weight_decay": config.head_weight_decay}]
    for depth, group in enumerate(groups[1:]):
        param_groups.append({"params": group, "lr": config.block_lr * config.depth_decay**depth,
                             "weight_decay": config.block_weight_decay})
    return torch.optim.Adam(param_groups)


def staged_finetune(
    model: ECGModel, train: ECGDataset, val: ECGDataset, loss_fn: nn.Module, fit_config: FitConfig,
    config: FinetuneConfig, run_dir: str | Path | None = None, progress: bool = True,
    labels: np.ndarray | None = None, lr_flags: str = LR_FLAGS,
) -> list[FitResult]:
    """Fine-tune ``model`` in place stage by stage, leaving it with the best weights of all stages (see
    :func:`best_stage`); returns each stage's fit result. ``lr_flags`` names the options that set the learning
    rates, for the errors.

    Raises:
        TrainingDiverged: a stage's loss became NaN or infinite (naming the stage and epoch).
        TrainingError: no epoch of any stage beat the validation loss of the model the run started from, so
            the fine-tuned model would be worse than the one given: no model is returned.
    """
    n_stages = len(model.parameter_groups()) if config.stages is None else min(config.stages,
                                                                               len(model.parameter_groups()))
    stage_fit = dataclasses.replace(fit_config, max_epochs=config.max_epochs_per_stage,
                                    early_stopping=config.early_stopping, freeze_batchnorm=True)
    results: list[FitResult] = []
    best_state, best_stage = None, -1
    for stage in range(n_stages):
        if results and best_stage != stage - 1:  # the stage before did not improve: go on from the best so far
            model.load_state_dict(best_state)
        groups = set_trainable_stage(model, stage)
        optimizer = stage_optimizer(groups, config)
        stage_dir = Path(run_dir) / f"stage{stage}" if run_dir is not None else None
        try:
            results.append(fit(model, train, val, loss_fn, stage_fit, stage_dir, progress, labels,
                               optimizer=optimizer, baseline=stage == 0))
        except TrainingDiverged as exc:
            raise TrainingDiverged(exc.epoch, exc.which, exc.value, exc.lr, lr_flags,
                                   f"fine-tuning stage {stage}, ") from None
        if best_stage < 0 or results[-1].best_val_loss < results[best_stage].best_val_loss:
            best_state, best_stage = copy.deepcopy(model.state_dict()), stage
    if best_stage != len(results) - 1:
        model.load_state_dict(best_state)
    start, best = results[0].start_val_loss, min(r.best_val_loss for r in results)
    if not best < start:  # NaN start (a diverged base model): nothing to compare with
        if math.isfinite(start):
            raise TrainingError(
                f"fine-tuning never improved on the model it started from: validation loss {start:.6g} before, at "
                f"best {best:.6g} after {sum(r.epochs_run for r in results)} epoch(s) in {len(results)} stage(s); "
                f"no model was written. Use the untuned model, or lower the learning rates ({lr_flags})")
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return results


def best_stage(results: list[FitResult]) -> int:
    """The stage whose best weights :func:`staged_finetune` kept: the lowest validation loss, the earliest on a tie."""
    return min(range(len(results)), key=lambda i: (results[i].best_val_loss, i))
