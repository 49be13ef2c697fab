"""Losses of the reference code; every loss takes raw model outputs."""

from __future__ import annotations

import math

import torch
from torch import nn

from aiecg.data.targets import TargetSpec


class LogCoshLoss(nn.Module):
    """Mean log(cosh(error)): quadratic for small errors, linear for large ones; computed stably."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = output - target
        return (error + nn.functional.softplus(-2.0 * error) - math.log(2.0)).mean()


class BCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    """Binary cross-entropy on logits; ``pos_weight`` up-weights the rare positive class."""


class CrossEntropyLoss(nn.Module):
    """Cross-entropy on logits for the multi-class target; targets arrive as a [batch, 1] float column."""

    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.loss = nn.CrossEntropyLoss(weight=weight)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(output, target.reshape(-1).long())


def default_loss(spec: TargetSpec, pos_weight: float | None = None) -> nn.Module:
    """LogCosh for regression, BCE-with-logits for binary, cross-entropy for multi-class targets."""
    if spec.is_regression:
        return LogCoshLoss()
    if spec.kind.value == "binary":
        weight = None if pos_weight is None else torch.tensor([pos_weight], dtype=torch.float32)
        return BCEWithLogitsLoss(pos_weight=weight)
    return CrossEntropyLoss()


class HuberLoss(nn.HuberLoss):
    """Huber loss with the reference's delta of 1.5 (on standardised targets)."""

    def __init__(self, delta: float = 1.5):
        super().__init__(delta=delta)


class TailWeightedL1Loss(nn.Module):
    """|error| weighted by 1 / (1 - Phi(z)) of the target's z-score, so that rare high-mass participants count
    more (the reference's imbalance-aware regression loss). ``floor`` bounds 1 - Phi(z) from below, capping the
    weight at 1 / floor. Targets are assumed standardised on the training split (mean 0, sd 1).
    """

    def __init__(self, floor: float = 0.05, mean: float = 0.0, sd: float = 1.0):
        super().__init__()
        if not 0 < floor < 1:
            raise ValueError(f"floor must be in (0, 1), got {floor}")
        self.floor, self.mean, self.sd = floor, mean, sd

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = (target - self.mean) / self.sd
        survival = 0.5 * torch.erfc(z / math.sqrt(2.0))  # 1 - Phi(z)
        weight = 1.0 / survival.clamp(min=self.floor)
        return (weight * (output - target).abs()).mean()


CRITERIA = ("logcosh", "huber", "tail", "bce", "ce")
"""Names accepted by ``--criterion``."""


def make_loss(name: str | None, spec: TargetSpec, pos_weight: float | None = None,
              class_weight: torch.Tensor | None = None) -> nn.Module:
    """A loss by name (None: the target's default), checked against the target kind."""
    if name is None:
        return CrossEntropyLoss(class_weight) if spec.kind.value == "multiclass" else default_loss(spec, pos_weight)
    regression = {"logcosh": LogCoshLoss, "huber": HuberLoss, "tail": TailWeightedL1Loss}
    if name in regression:
        if not spec.is_regression:
            raise ValueError(f"--criterion {name} is a regression loss; target {spec.name} is categorical")
        return regression[name]()
    if name == "bce":
        if spec.kind.value != "binary":
            raise ValueError(f"--criterion bce needs a binary target, not {spec.name}")
        return default_loss(spec, pos_weight)
    if name == "ce":
        if spec.is_regression:
            raise ValueError(f"--criterion ce needs a categorical target, not {spec.name}")
        if spec.kind.value == "binary":
            raise ValueError("--criterion ce: use bce for the binary LVH target")
        return CrossEntropyLoss(class_weight)
    raise ValueError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)}")
