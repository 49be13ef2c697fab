"""Prediction targets of the reference code and their sex-specific LVH thresholds.

Thresholds for LV hypertrophy are those of the UK Biobank CMR reference ranges (Petersen et al., JCMR 2017)
as used by Naderi, Kaplan et al.: indexed LV mass > 70 g/m2 in men and > 55 g/m2 in women; absolute LV mass
> 141 g in men and > 93 g in women.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np


class Target(StrEnum):
    """The names of the reference's targets (behaviour lives in :class:`TargetSpec`)."""

    MASS = "MASS"
    INDEXED_MASS = "INDEXED_MASS"
    LVH = "LVH"
    HN = "HN"
    VOL = "VOL"
    INDEXED_VOL = "INDEXED_VOL"
    MASS_VOL_RATIO = "MASS_VOL_RATIO"
    MASS_VOL = "MASS_VOL"
    INDEXED_MASS_VOL = "INDEXED_MASS_VOL"


class TaskKind(StrEnum):
    REGRESSION = "regression"
    BINARY = "binary"
    MULTICLASS = "multiclass"


HN_CLASSES = ("Normal", "Remodelling", "Eccentric", "Concentric")
"""The 4-class remodelling label: LVH or not crossed with a high or normal mass/volume ratio."""


@dataclass(frozen=True)
class LVHThresholds:
    """Sex-specific cut-offs above which LV mass counts as hypertrophy (Petersen et al. 2017)."""

    male: float
    female: float

    def classify(self, value: np.ndarray, is_male: np.ndarray) -> np.ndarray:
        """1 where ``value`` exceeds the cut-off for that participant's sex, else 0."""
        value = np.asarray(value, dtype=float)
        cut = np.where(np.asarray(is_male, dtype=bool), self.male, self.female)
        return (value > cut).astype(np.int64)


INDEXED_MASS_THRESHOLDS = LVHThresholds(male=70.0, female=55.0)
MASS_THRESHOLDS = LVHThresholds(male=141.0, female=93.0)


@dataclass(frozen=True)
class TargetSpec:
    """What a target predicts and how.

    Attributes:
        target: the target's name.
        kind: regression, binary or multiclass.
        outputs: cohort-mapping keys of the outputs, in model-output order (a regression may have two).
        n_outputs: the model's output width (classes for multiclass).
        lvh_thresholds: for mass targets, the cut-offs that turn a predicted mass into an LVH call.
        classes: class names for categorical targets.
    """

    target: Target
    kind: TaskKind
    outputs: tuple[str, ...]
    n_outputs: int
    lvh_thresholds: LVHThresholds | None = None
    classes: tuple[str, ...] = ()

    @property
    def is_regression(self) -> bool:
        return self.kind is TaskKind.REGRESSION

    @property
    def is_categorical(self) -> bool:
        return self.kind is not TaskKind.REGRESSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.value
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        thresholds = data.get("lvh_thresholds")
        return cls(
            target=Target(data["target"]), kind=TaskKind(data["kind"]), outputs=tuple(data["outputs"]),
            n_outputs=int(data["n_outputs"]),
            lvh_thresholds=LVHThresholds(**thresholds) if thresholds else None,
            classes=tuple(data.get("classes", ())),
        )


_SPECS: dict[Target, TargetSpec] = {
    Target.MASS: TargetSpec(Target.MASS, TaskKind.REGRESSION, ("MASS",), 1, MASS_THRESHOLDS),
    Target.INDEXED_MASS: TargetSpec(
        Target.INDEXED_MASS, TaskKind.REGRESSION, ("INDEXED_MASS",), 1, INDEXED_MASS_THRESHOLDS
    ),
    Target.LVH: TargetSpec(Target.LVH, TaskKind.BINARY, ("LVH",), 1, classes=("no LVH", "LVH")),
    Target.HN: TargetSpec(Target.HN, TaskKind.MULTICLASS, ("HN",), len(HN_CLASSES), classes=HN_CLASSES),
    Target.VOL: TargetSpec(Target.VOL, TaskKind.REGRESSION, ("VOL",), 1),
    Target.INDEXED_VOL: TargetSpec(Target.INDEXED_VOL, TaskKind.REGRESSION, ("INDEXED_VOL",), 1),
    Target.MASS_VOL_RATIO: TargetSpec(Target.MASS_VOL_RATIO, TaskKind.REGRESSION, ("MASS_VOL_RATIO",), 1),
    Target.MASS_VOL: TargetSpec(Target.MASS_VOL, TaskKind.REGRESSION, ("MASS", "VOL"), 2, MASS_THRESHOLDS),
    Target.INDEXED_MASS_VOL: TargetSpec(
        Target.INDEXED_MASS_VOL, TaskKind.REGRESSION, ("INDEXED_MASS", "INDEXED_VOL"), 2, INDEXED_MASS_THRESHOLDS
    ),
}


def target_spec(name: str | Target) -> TargetSpec:
    """The :class:`TargetSpec` of a target name such as ``"INDEXED_MASS"``."""
    try:
        return _SPECS[Target(str(getattr(name, "value", name)).upper())]
    except ValueError:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(t.value for t in Target)}") from None


def list_targets() -> list[str]:
    return [t.value for t in Target]
