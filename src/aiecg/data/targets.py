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
    """What a target predicts and how: everything about a target lives here, nothing depends on its name.

    Adding a target means registering one more spec (see :func:`register_target`); the cohort YAML, the CLI,
    training, the results table and the bundle read what they need from it.

    Attributes:
        name: the target's name (``INDEXED_MASS``; the reference's ``--target``).
        kind: regression, binary or multiclass.
        outputs: cohort-mapping keys of the outputs, in model-output order (a regression may have two).
        stems: results-table column stem of each output (``ilvm`` gives ``ilvm_true``/``ilvm_pred``, the
            reference's names).
        n_outputs: the model's output width (classes for multiclass).
        lvh_thresholds: for mass targets, the cut-offs that turn a predicted mass into an LVH call.
        classes: class names for categorical targets; the table must code them 0..len(classes)-1.
        value_range: plausible range of each regression output (rows outside it are excluded).
        units: units of each regression output, for reports.
    """

    name: str
    kind: TaskKind
    outputs: tuple[str, ...]
    stems: tuple[str, ...]
    n_outputs: int
    lvh_thresholds: LVHThresholds | None = None
    classes: tuple[str, ...] = ()
    value_range: tuple[tuple[float, float], ...] = ()
    units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.stems) != len(self.outputs):
            raise ValueError(f"target {self.name}: one column stem per output needed")
        if self.is_categorical and len(self.classes) < 2:
            raise ValueError(f"target {self.name}: a categorical target needs at least two classes")

    @property
    def is_regression(self) -> bool:
        return self.kind is TaskKind.REGRESSION

    @property
    def is_categorical(self) -> bool:
        return self.kind is not TaskKind.REGRESSION

    @property
    def stem(self) -> str:
        """The column stem of the first (primary) output."""
        return self.stems[0]

    def output_range(self, key: str) -> tuple[float, float]:
        """The plausible range of the output mapped as ``key`` (unbounded when the spec gives none)."""
        k = self.outputs.index(key)
        return tuple(self.value_range[k]) if k < len(self.value_range) else (-np.inf, np.inf)

    def invalid_codes(self, values: Any) -> list[Any]:
        """The distinct non-missing values of a categorical target column that are not class codes
        0..len(classes)-1 (an LVH column coded 1/2 gives ``[2]``, caught before any training)."""
        allowed = set(range(len(self.classes)))
        seen = []
        for value in dict.fromkeys(v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))):
            try:
                number = float(value)
            except (TypeError, ValueError):
                seen.append(value)
                continue
            if not number.is_integer() or int(number) not in allowed:
                seen.append(value)
        return seen

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        thresholds = data.get("lvh_thresholds")
        name = str(data.get("name", data.get("target")))
        known = _SPECS.get(name)
        outputs = tuple(data["outputs"])
        stems = tuple(data.get("stems") or (known.stems if known else ()))
        return cls(
            name=name, kind=TaskKind(data["kind"]), outputs=outputs, stems=stems,
            n_outputs=int(data["n_outputs"]),
            lvh_thresholds=LVHThresholds(**thresholds) if thresholds else None,
            classes=tuple(data.get("classes", ())),
            value_range=tuple(tuple(r) for r in data.get("value_range", ())),
            units=tuple(data.get("units", ())),
        )


_SPECS: dict[str, TargetSpec] = {}


def register_target(spec: TargetSpec) -> TargetSpec:
    """Make a target available everywhere (CLI choices, cohort YAML keys, training, results, bundles)."""
    if spec.name in _SPECS:
        raise ValueError(f"target {spec.name!r} is already registered")
    for other in _SPECS.values():
        for key, stem in zip(other.outputs, other.stems):
            if key in spec.outputs and spec.stems[spec.outputs.index(key)] != stem:
                raise ValueError(f"target {spec.name}: output {key} already has the column stem {stem!r}")
    _SPECS[spec.name] = spec
    return spec


MASS_RANGE, VOL_RANGE, INDEXED_RANGE, RATIO_RANGE = (20.0, 600.0), (20.0, 600.0), (10.0, 300.0), (0.2, 4.0)
for _spec in (
    TargetSpec("MASS", TaskKind.REGRESSION, ("MASS",), ("lvm",), 1, MASS_THRESHOLDS, value_range=(MASS_RANGE,),
               units=("g",)),
    TargetSpec("INDEXED_MASS", TaskKind.REGRESSION, ("INDEXED_MASS",), ("ilvm",), 1, INDEXED_MASS_THRESHOLDS,
               value_range=(INDEXED_RANGE,), units=("g/m²",)),
    TargetSpec("LVH", TaskKind.BINARY, ("LVH",), ("lvh",), 1, classes=("no LVH", "LVH")),
    TargetSpec("HN", TaskKind.MULTICLASS, ("HN",), ("hn",), len(HN_CLASSES), classes=HN_CLASSES),
    TargetSpec("VOL", TaskKind.REGRESSION, ("VOL",), ("lvedv",), 1, value_range=(VOL_RANGE,), units=("ml",)),
    TargetSpec("INDEXED_VOL", TaskKind.REGRESSION, ("INDEXED_VOL",), ("ilvedv",), 1, value_range=(INDEXED_RANGE,),
               units=("ml/m²",)),
    TargetSpec("MASS_VOL_RATIO", TaskKind.REGRESSION, ("MASS_VOL_RATIO",), ("mvr",), 1, value_range=(RATIO_RANGE,),
               units=("g/ml",)),
    TargetSpec("MASS_VOL", TaskKind.REGRESSION, ("MASS", "VOL"), ("lvm", "lvedv"), 2, MASS_THRESHOLDS,
               value_range=(MASS_RANGE, VOL_RANGE), units=("g", "ml")),
    TargetSpec("INDEXED_MASS_VOL", TaskKind.REGRESSION, ("INDEXED_MASS", "INDEXED_VOL"), ("ilvm", "ilvedv"), 2,
               INDEXED_MASS_THRESHOLDS, value_range=(INDEXED_RANGE, INDEXED_RANGE), units=("g/m²", "ml/m²")),
):
    register_target(_spec)


def target_spec(name: str) -> TargetSpec:
    """The :class:`TargetSpec` of a target name such as ``"INDEXED_MASS"``."""
    key = str(name).upper()
    if key not in _SPECS:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(_SPECS)}")
    return _SPECS[key]


def list_targets() -> list[str]:
    return list(_SPECS)


def mapping_keys() -> dict[str, TargetSpec]:
    """Every key a cohort YAML may map under ``targets``, with a spec that predicts it."""
    keys: dict[str, TargetSpec] = {}
    for spec in _SPECS.values():
        for key in spec.outputs:
            keys.setdefault(key, spec)
    return keys
