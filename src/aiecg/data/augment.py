"""Seeded ECG augmentation for the training split only; functions on batches [batch, lead, time].

Each transform takes an explicit ``torch.Generator`` (pure given its generator), in the style of braindecode's
``augmentation/functional.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


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


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, with their strengths; each applies to a sample with probability ``p``."""

    crop_resize: float = 0.9
    amplitude: tuple[float, float] = (0.9, 1.1)
    noise_mv: float = 0.01
    max_shift: int = 10
    p: float = 0.5


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply each transform to a random subset (probability ``config.p``) of the batch."""
    steps = (
        lambda t: random_crop_resize(t, generator, config.crop_resize),
        lambda t: amplitude_scale(t, generator, *config.amplitude),
        lambda t: gaussian_noise(t, generator, config.noise_mv),
        lambda t: time_shift(t, generator, config.max_shift),
    )
    for step in steps:
        chosen = torch.rand(x.shape[0], generator=generator) < config.p
        if chosen.any():
            x = x.clone()
            x[chosen] = step(x[chosen])
    return x
