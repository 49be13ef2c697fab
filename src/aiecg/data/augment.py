"""Seeded ECG augmentation for the training split only, on batches [batch, lead, time].

Braindecode's pattern: pure functions that take an explicit ``torch.Generator`` (below), and thin transform
classes over them (:class:`Transform`), each applied to a random subset of the batch with its own probability and
composed in order (:class:`Compose`). A transform sees and returns the targets too, so label-changing
augmentations (:class:`Mixup`) fit the same interface.

Adding one is one class: a :class:`Transform` dataclass whose fields are its options (with defaults), decorated
``@register_transform("name")``. A run then turns it on by naming it under ``fit.augment.transforms``
(``{name: {probability: 0.3, ...}}``; :class:`aiecg.config.AugmentConfig`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from aiecg.config import AugmentConfig
from aiecg.ecg import MODEL_LEADS
from aiecg.errors import ConfigError

CHEST_LEADS: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6")


def random_crop_resize(x: torch.Tensor, generator: torch.Generator, min_fraction: float = 0.9) -> torch.Tensor:
    """Crop a random window of ``min_fraction``-1 of the length per sample, then resize it back by linear
    interpolation (a small random time-scaling)."""
    batch, _, length = x.shape
    out = torch.empty_like(x)
    fractions = min_fraction + (1 - min_fraction) * torch.rand(batch, generator=generator)
    for i in range(batch):
        size = max(2, int(round(length * float(fractions[i]))))
        start = int(torch.randint(0, length - size + 1, (1,), generator=generator))
        out[i] = F.interpolate(x[i : i + 1, :, start : start + size], size=length, mode="linear",
                               align_corners=True)[0]
    return out


def amplitude_scale(x: torch.Tensor, generator: torch.Generator, low: float = 0.9, high: float = 1.1) -> torch.Tensor:
    """Multiply every sample's ECG by one random factor in [low, high] (gain differences between devices)."""
    factors = low + (high - low) * torch.rand(x.shape[0], 1, 1, generator=generator)
    return x * factors


def gaussian_noise(x: torch.Tensor, generator: torch.Generator, sd_mv: float = 0.01) -> torch.Tensor:
    """Add white noise with a per-lead random level up to ``sd_mv`` millivolts."""
    level = sd_mv * torch.rand(x.shape[0], x.shape[1], 1, generator=generator)
    return x + level * torch.randn(x.shape, generator=generator)


def time_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 10) -> torch.Tensor:
    """Shift each sample along time by up to ``max_shift`` samples, padding with the edge values."""
    shifts = torch.randint(-max_shift, max_shift + 1, (x.shape[0],), generator=generator)
    padded = F.pad(x, (max_shift, max_shift), mode="replicate")
    index = torch.arange(x.shape[2]) + max_shift
    return torch.stack([padded[i, :, index - int(shifts[i])] for i in range(x.shape[0])])


def displace_chest_electrodes(x: torch.Tensor, chest: list[int], shifts: torch.Tensor,
                              log_gains: torch.Tensor) -> torch.Tensor:
    """The ECGs [batch, lead, time] as if every chest electrode of a sample had been placed ``shifts[i]`` lead
    spacings laterally (towards V6; negative: medially; at most one spacing) and each chest lead then scaled by
    ``exp(log_gains[i, j])``. The moved lead is the linear interpolation between the lead and its neighbour
    (extrapolated one spacing beyond V1 and V6): the precordial potential varies smoothly across the chest.
    ``chest`` gives the channels of V1..V6 in order; the other leads are left as they are."""
    f = shifts.clamp(-1.0, 1.0).view(-1, 1, 1).to(x.dtype)
    leads = x[:, chest]
    lateral = torch.cat([leads[:, 1:], 2 * leads[:, -1:] - leads[:, -2:-1]], dim=1)
    medial = torch.cat([2 * leads[:, :1] - leads[:, 1:2], leads[:, :-1]], dim=1)
    moved = (1 - f.abs()) * leads + f.abs() * torch.where(f >= 0, lateral, medial)
    out = x.clone()
    out[:, chest] = moved * torch.exp(log_gains.to(x.dtype)).view(len(x), len(chest), 1)
    return out


def mixup(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
          alpha: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with a random partner of the batch, ECG and target alike, by a Beta(alpha, alpha)
    weight (Zhang et al., "mixup: Beyond empirical risk minimization", ICLR 2018)."""
    if len(x) < 2:
        return x, y
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    weight = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, len(x))).to(x.dtype)
    partner = torch.randperm(len(x), generator=generator)
    wx = weight.view(-1, *([1] * (x.dim() - 1)))
    wy = weight.view(-1, *([1] * (y.dim() - 1)))
    return wx * x + (1 - wx) * x[partner], wy * y + (1 - wy) * y[partner]


@dataclass
class Transform:
    """A transform applied to each sample of a batch with ``probability``; subclasses define :meth:`apply`."""

    probability: float = 0.5

    def apply(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = torch.rand(x.shape[0], generator=generator) < self.probability
        if not chosen.any():
            return x, y
        x, y = x.clone(), y.clone()
        x[chosen], y[chosen] = self.apply(x[chosen], y[chosen], generator)
        return x, y


TRANSFORMS: dict[str, type[Transform]] = {}


def register_transform(name: str) -> Callable[[type[Transform]], type[Transform]]:
    """Class decorator: make a :class:`Transform` dataclass available as ``fit.augment.transforms.name``."""
    def decorate(cls: type[Transform]) -> type[Transform]:
        if name in TRANSFORMS and TRANSFORMS[name] is not cls:
            raise ValueError(f"augmentation {name!r} is already registered by {TRANSFORMS[name].__qualname__}")
        TRANSFORMS[name] = cls
        return cls
    return decorate


@register_transform("crop_resize")
@dataclass
class CropResize(Transform):
    min_fraction: float = 0.9

    def apply(self, x, y, generator):
        return random_crop_resize(x, generator, self.min_fraction), y


@register_transform("amplitude")
@dataclass
class AmplitudeScale(Transform):
    low: float = 0.9
    high: float = 1.1

    def apply(self, x, y, generator):
        return amplitude_scale(x, generator, self.low, self.high), y


@register_transform("noise")
@dataclass
class GaussianNoise(Transform):
    sd_mv: float = 0.01

    def apply(self, x, y, generator):
        return gaussian_noise(x, generator, self.sd_mv), y


@register_transform("shift")
@dataclass
class TimeShift(Transform):
    max_shift: int = 10

    def apply(self, x, y, generator):
        return time_shift(x, generator, self.max_shift), y


@register_transform("electrode")
@dataclass
class ElectrodePlacement(Transform):
    """Chest-electrode placement as it varies between recordings in routine care: all six chest electrodes move
    together laterally or medially by a normal draw of ``shift_sd`` lead spacings, and each chest lead's gain by a
    log-normal draw of SD ``gain_sd``. Wenger & Kligfield (J Electrocardiol 1996;29:179) found routine chest
    electrodes 2.9 cm from their anatomical sites on average (about half the 5-6 cm between neighbouring chest
    electrodes); the R amplitude of V5 varies by tens of per cent between recordings when the sites are not marked
    (J Cardiovasc Med 2006;7:812). Off unless a run gives it a probability; ``leads`` are the input's leads in order
    (the model's eight by default)."""

    probability: float = 0.0
    shift_sd: float = 0.5
    gain_sd: float = 0.2
    leads: tuple[str, ...] = MODEL_LEADS

    def __post_init__(self) -> None:
        missing = [lead for lead in CHEST_LEADS if lead not in self.leads]
        if missing and self.probability > 0:
            raise ConfigError(f"augment.transforms.electrode: moves the chest electrodes, but the input's leads "
                              f"{list(self.leads)} lack {missing}; read all six chest leads or turn it off")

    def apply(self, x, y, generator):
        if x.shape[1] != len(self.leads):
            raise ConfigError(f"augment.transforms.electrode: the input has {x.shape[1]} leads; the transform was "
                              f"told {list(self.leads)}; give the input's leads in order as its 'leads' option")
        chest = [list(self.leads).index(lead) for lead in CHEST_LEADS]
        shifts = self.shift_sd * torch.randn(len(x), generator=generator)
        log_gains = self.gain_sd * torch.randn(len(x), len(chest), generator=generator)
        return displace_chest_electrodes(x, chest, shifts, log_gains), y


@register_transform("mixup")
@dataclass
class Mixup(Transform):
    """Label-changing: mixes targets as well as ECGs (meaningful for regression targets); off unless a run
    gives it a probability."""

    probability: float = 0.0
    alpha: float = 0.2

    def apply(self, x, y, generator):
        return mixup(x, y, generator, self.alpha)


@dataclass
class Compose:
    """Transforms applied in order, each with its own probability."""

    transforms: list[Transform]

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        for transform in self.transforms:
            x, y = transform(x, y, generator)
        return x, y


def build_augmentation(config: AugmentConfig) -> Compose:
    """The transforms an :class:`AugmentConfig` names, in its order, with its options over each class's defaults
    (those with probability 0 are left out).

    Raises:
        ConfigError: an unknown transform or option, naming the registered ones.
    """
    transforms = []
    for name, options in config.transforms.items():
        if name not in TRANSFORMS:
            raise ConfigError(f"augment.transforms: unknown augmentation {name!r}; registered: "
                              f"{', '.join(TRANSFORMS)}")
        cls = TRANSFORMS[name]
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"augment.transforms.{name}: unknown options {unknown}; {name} takes {known}")
        transforms.append(cls(**options))
    return Compose([t for t in transforms if t.probability > 0])


def for_input_leads(config: AugmentConfig, leads: tuple[str, ...] | list[str]) -> AugmentConfig:
    """``config`` with the run's input leads given to the transforms that need them (``electrode``), unless the
    configuration names them itself."""
    options = config.transforms.get("electrode")
    if options is None or "leads" in options:
        return config
    return AugmentConfig({**config.transforms, "electrode": {**options, "leads": list(leads)}})


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator,
                  y: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Apply :func:`build_augmentation` of ``config`` to a batch; returns ``x`` alone when no targets are given
    (mixup then has nothing to mix and is skipped), else ``(x, y)``."""
    pipeline = build_augmentation(config)
    if y is None:
        pipeline = Compose([t for t in pipeline.transforms if not isinstance(t, Mixup)])
        return pipeline(x, torch.zeros(len(x), 1), generator)[0]
    return pipeline(x, y, generator)
