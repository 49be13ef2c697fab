"""Losses of the reference code behind one registry; every loss takes raw model outputs.

A loss is one class: a ``torch.nn.Module`` decorated ``@register_loss("name")``, saying which target kinds it
serves (``kinds``) and building itself for a target (:meth:`Loss.build`, which receives the class weights a run
computes with ``--loss-weighting``). ``--criterion name`` then picks it; :func:`make_loss` refuses a loss for a
target kind it does not serve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from aiecg.data.targets import TargetSpec

REGRESSION, BINARY, MULTICLASS = "regression", "binary", "multiclass"


class Loss(nn.Module):
    """A registered loss. Subclasses set ``kinds`` (the target kinds they serve) and may override
    :meth:`build`."""

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    refusals: ClassVar[dict[str, str]] = {}
    """Per target kind not served, a hint that replaces the generic refusal (e.g. ``use bce``)."""

    @classmethod
    def build(cls, spec: TargetSpec, pos_weight: float | None = None,
              class_weight: torch.Tensor | None = None) -> nn.Module:
        """The loss for ``spec``; ``pos_weight`` (binary) and ``class_weight`` (multi-class) come from the
        training labels when the run weights its classes."""
        return cls()


LOSSES: dict[str, type[Loss]] = {}


def register_loss(name: str) -> Callable[[type[Loss]], type[Loss]]:
    """Class decorator: make a :class:`Loss` available as ``--criterion name``."""
    def decorate(cls: type[Loss]) -> type[Loss]:
        if name in LOSSES and LOSSES[name] is not cls:
            raise ValueError(f"loss {name!r} is already registered by {LOSSES[name].__qualname__}")
        if not cls.kinds:
            raise ValueError(f"loss {name!r} must name the target kinds it serves (kinds)")
        cls.name = name
        LOSSES[name] = cls
        return cls
    return decorate


def list_losses() -> list[str]:
    """The names ``--criterion`` accepts."""
    return list(LOSSES)


def _kind(spec: TargetSpec) -> str:
    return spec.kind.value


@register_loss("logcosh")
class LogCoshLoss(Loss):
    """Mean log(cosh(error)): quadratic for small errors, linear for large ones; computed stably."""

    kinds = (REGRESSION,)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = output - target
        return (error + nn.functional.softplus(-2.0 * error) - math.log(2.0)).mean()


@register_loss("huber")
class HuberLoss(nn.HuberLoss, Loss):
    """Huber loss with the reference's delta of 1.5 (on standardised targets)."""

    kinds = (REGRESSION,)

    def __init__(self, delta: float = 1.5):
        super().__init__(delta=delta)


@register_loss("tail")
class TailWeightedL1Loss(Loss):
    """|error| weighted by 1 / (1 - Phi(z)) of the target's z-score, so that rare high-mass participants count
    more (the reference's imbalance-aware regression loss). ``floor`` bounds 1 - Phi(z) from below, capping the
    weight at 1 / floor. Targets are assumed standardised on the training split (mean 0, sd 1).
    """

    kinds = (REGRESSION,)

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


@register_loss("bce")
class BCEWithLogitsLoss(nn.BCEWithLogitsLoss, Loss):
    """Binary cross-entropy on logits; ``pos_weight`` up-weights the rare positive class."""

    kinds = (BINARY,)

    @classmethod
    def build(cls, spec: TargetSpec, pos_weight: float | None = None,
              class_weight: torch.Tensor | None = None) -> nn.Module:
        return cls(pos_weight=None if pos_weight is None else torch.tensor([pos_weight], dtype=torch.float32))


@register_loss("ce")
class CrossEntropyLoss(Loss):
    """Cross-entropy on logits for the multi-class target; targets arrive as a [batch, 1] float column."""

    kinds = (MULTICLASS,)
    refusals = {BINARY: "use bce for the binary LVH target"}

    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.loss = nn.CrossEntropyLoss(weight=weight)

    @classmethod
    def build(cls, spec: TargetSpec, pos_weight: float | None = None,
              class_weight: torch.Tensor | None = None) -> nn.Module:
        return cls(class_weight)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(output, target.reshape(-1).long())


DEFAULT_LOSSES = {REGRESSION: "logcosh", BINARY: "bce", MULTICLASS: "ce"}
"""The loss of each target kind when ``--criterion`` is not given."""


def default_loss(spec: TargetSpec, pos_weight: float | None = None) -> nn.Module:
    """LogCosh for regression, BCE-with-logits for binary, cross-entropy for multi-class targets."""
    return LOSSES[DEFAULT_LOSSES[_kind(spec)]].build(spec, pos_weight)


def make_loss(name: str | None, spec: TargetSpec, pos_weight: float | None = None,
              class_weight: torch.Tensor | None = None) -> nn.Module:
    """A registered loss by name (None: the target kind's default), checked against the target kind."""
    name = DEFAULT_LOSSES[_kind(spec)] if name is None else name
    if name not in LOSSES:
        raise ValueError(f"unknown criterion {name!r}; choose one of {', '.join(LOSSES)}")
    cls, kind = LOSSES[name], _kind(spec)
    if kind not in cls.kinds:
        if kind in cls.refusals:
            raise ValueError(f"--criterion {name}: {cls.refusals[kind]}")
        what = "a regression loss" if cls.kinds == (REGRESSION,) else f"a loss for {' or '.join(cls.kinds)} targets"
        raise ValueError(f"--criterion {name} is {what}; target {spec.name} is {kind}")
    return cls.build(spec, pos_weight, class_weight)
