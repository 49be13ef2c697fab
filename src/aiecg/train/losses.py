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
