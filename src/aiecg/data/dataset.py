"""Model inputs for a set of participants: median beats (or rhythm strips) x clinical features x targets, in memory.

A 50,000-participant store of 8 x 400 median beats is 64 MB in float32, so a split is loaded once from the
memory-mapped store and served from RAM; training never parses ECG files. Rhythm strips (8 x 2,500 at 250 Hz) are
6x larger: 4 GB for 50,000 participants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from aiecg.data.cohort import ID, IS_MALE
from aiecg.data.features import ClinicalEncoder
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec


@dataclass(frozen=True)
class TargetScaling:
    """Standardisation of regression targets, fitted on the training split: z = (y - mean) / sd."""

    mean: tuple[float, ...]
    sd: tuple[float, ...]

    @classmethod
    def fit(cls, y: np.ndarray) -> TargetScaling:
        sd = np.nanstd(y, axis=0)
        return cls(tuple(np.nanmean(y, axis=0).tolist()), tuple(np.where(sd > 0, sd, 1.0).tolist()))

    def apply(self, y: np.ndarray) -> np.ndarray:
        return ((y - np.asarray(self.mean)) / np.asarray(self.sd)).astype(np.float32)

    def invert(self, z: np.ndarray) -> np.ndarray:
        return z * np.asarray(self.sd) + np.asarray(self.mean)


@dataclass
class Arrays:
    """Aligned arrays of one split (rows in ``ids`` order); ``parts`` gives the samples of each input joined along
    ``ecg``'s time axis (median beat, then strip, for input ``both``; empty when not recorded)."""

    ids: np.ndarray
    is_male: np.ndarray
    ecg: np.ndarray
    meta: np.ndarray
    target: np.ndarray
    parts: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)


def target_matrix(frame: pd.DataFrame, spec: TargetSpec) -> np.ndarray:
    """The target columns of ``spec`` as float32 [rows, outputs] (class index for categorical targets)."""
    return frame[list(spec.outputs)].to_numpy(dtype=np.float32)


def build_arrays(
    store: Store,
    frame: pd.DataFrame,
    ids: Sequence[str],
    spec: TargetSpec,
    leads: Sequence[str],
    encoder: ClinicalEncoder | None,
    kind: str = "median",
) -> Arrays:
    """Gather one split's inputs (of input ``kind``: :data:`aiecg.contract.INPUTS`) and targets; ``frame`` is
    :attr:`Cohort.frame`."""
    rows = frame.set_index(ID).loc[list(map(str, ids))].reset_index()
    meta = encoder.transform(rows) if encoder is not None else np.zeros((len(rows), 0), np.float32)
    has_targets = all(name in rows for name in spec.outputs)
    target = target_matrix(rows, spec) if has_targets else np.full((len(rows), len(spec.outputs)), np.nan, np.float32)
    ecg = store.model_input(rows[ID].tolist(), leads, kind)
    parts = (int(store.manifest["window"]), ecg.shape[2] - int(store.manifest["window"])) if kind == "both" \
        else (ecg.shape[2],)
    return Arrays(ids=rows[ID].to_numpy(dtype=str), is_male=rows[IS_MALE].to_numpy(dtype=np.int64), ecg=ecg,
                  meta=meta, target=target, parts=parts)


class ECGDataset(Dataset):
    """A torch view of :class:`Arrays`; targets optionally standardised."""

    def __init__(self, arrays: Arrays, scaling: TargetScaling | None = None):
        target = scaling.apply(arrays.target) if scaling is not None else arrays.target
        self.ecg = torch.from_numpy(np.ascontiguousarray(arrays.ecg))
        self.meta = torch.from_numpy(np.ascontiguousarray(arrays.meta))
        self.target = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.ecg)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.ecg[i], self.meta[i], self.target[i]


def expand_with_beats(arrays: Arrays, store: Store, chosen: np.ndarray, leads: Sequence[str]) -> Arrays:
    """Add every clean individual beat of the ``chosen`` participants as an extra sample (the reference's beat
    expansion of LVH cases). Use on the training split only; the split is made on participants before this, so
    no participant's beats reach another split.
    """
    extra_rows, extra_ecg = [], []
    for row in np.flatnonzero(chosen):
        beats = store.beats_of(arrays.ids[row], leads)
        extra_rows += [row] * len(beats)
        extra_ecg.append(beats)
    if not extra_rows:
        return arrays
    rows = np.asarray(extra_rows)
    return Arrays(
        ids=np.concatenate([arrays.ids, arrays.ids[rows]]),
        is_male=np.concatenate([arrays.is_male, arrays.is_male[rows]]),
        ecg=np.concatenate([arrays.ecg, np.concatenate(extra_ecg).astype(np.float32)]),
        meta=np.concatenate([arrays.meta, arrays.meta[rows]]),
        target=np.concatenate([arrays.target, arrays.target[rows]]),
    )
