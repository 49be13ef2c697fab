"""Typed run configuration: loaded from YAML, overridden by command-line flags, saved next to every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aiecg.data.augment import AugmentConfig
from aiecg.ecg import MODEL_LEADS
from aiecg.train.loop import FitConfig


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the config is plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class RunConfig:
    """One training (or evaluation) run.

    Attributes:
        cohort: the cohort YAML.
        store: the prepared store of that cohort's ECGs (default: ``store/`` beside the cohort YAML).
        target: a target name (``INDEXED_MASS``, ``LVH``, ...).
        arch: a registered model name.
        model_kwargs: extra constructor arguments of the model.
        excl_meta: train on the ECG alone, without clinical variables.
        leads: the leads the model reads, in order.
        split_seed: seed of the participant split (the reference splits 70/15/15).
        split_fractions: train, validation, test shares.
        fit: optimisation settings.
        out: the directory that holds runs.
        name: the run's name (the reference's ``--save``); the run directory is ``out/name``.
        criterion: a loss name (``logcosh``, ``huber``, ``tail``, ``bce``, ``ce``); None: the target's default.
        loss_weighting: weight the rare class (BCE ``pos_weight`` = negatives / positives; inverse class
            frequency for cross-entropy).
        augment: seeded augmentation of training batches.
        beat_expansion: add every clean beat of LVH participants in the training split as extra samples
            (needs a store prepared with beats).
        resume: continue the run from its last checkpoint.
        recalib: fit a linear recalibration of the predicted value on (sex, prediction) on the validation split.
        target_prevalence: the LVH prevalence probabilities are prior-shift adjusted to (default: the training
            split's).
        compare: evaluate the ML baselines and classic criteria on the same test participants.
    """

    cohort: str = ""
    store: str | None = None
    target: str = "INDEXED_MASS"
    arch: str = "fcn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    excl_meta: bool = False
    leads: tuple[str, ...] = MODEL_LEADS
    split_seed: int = 42
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    fit: FitConfig = field(default_factory=FitConfig)
    out: str = "runs"
    name: str = "run"
    criterion: str | None = None
    loss_weighting: bool = False
    augment: bool = False
    beat_expansion: bool = False
    resume: bool = False
    recalib: bool = False
    target_prevalence: float | None = None
    compare: bool = True

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def store_path(self) -> Path:
        return Path(self.store) if self.store else Path(self.cohort).parent / "store"

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run-config keys {unknown}; known: {sorted(known)}")
        data = dict(data)
        fit = dict(data.pop("fit", {}) or {})
        fit_known = {f.name for f in dataclasses.fields(FitConfig)}
        if set(fit) - fit_known:
            raise ValueError(f"unknown fit keys {sorted(set(fit) - fit_known)}; known: {sorted(fit_known)}")
        if fit.get("augment") is not None:
            augment = dict(fit["augment"])
            if "amplitude" in augment:
                augment["amplitude"] = tuple(augment["amplitude"])
            fit["augment"] = AugmentConfig(**augment)
        if "leads" in data:
            data["leads"] = tuple(data["leads"])
        if "split_fractions" in data:
            data["split_fractions"] = tuple(data["split_fractions"])
        return cls(fit=FitConfig(**fit), **data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})

    def override(self, **changes: Any) -> RunConfig:
        """A copy with the given fields changed; ``fit__lr=...`` changes a fit field. ``None`` values are ignored."""
        fit_changes = {k[5:]: v for k, v in changes.items() if k.startswith("fit__") and v is not None}
        top = {k: v for k, v in changes.items() if not k.startswith("fit__") and v is not None}
        return dataclasses.replace(self, fit=dataclasses.replace(self.fit, **fit_changes), **top)
