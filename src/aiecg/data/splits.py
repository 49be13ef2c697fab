"""Participant-level train/validation/test splits, seeded, stratified for categorical targets.

Splits are made on participant ids before any beat expansion, so no participant's beats can appear in two
splits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from aiecg.errors import ConfigError


def check_fractions(fractions: tuple[float, float, float]) -> None:
    """Raise :class:`ConfigError` unless the train, validation and test shares are positive and sum to 1."""
    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        shares = ",".join(f"{f:g}" for f in fractions)
        raise ConfigError(f"--split-fractions {shares}: the train, validation and test shares must be three "
                          "positive numbers that sum to 1 (e.g. 0.6,0.2,0.2)")


@dataclass(frozen=True)
class Splits:
    """Participant ids per split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": list(map(str, self.train)), "val": list(map(str, self.val)), "test": list(map(str, self.test))}

    def save(self, directory: str | Path) -> None:
        """Write ``splits.json`` and one id list per split (``train_ids.txt`` ...)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "splits.json").write_text(json.dumps(self.as_dict()))
        for name, ids in self.as_dict().items():
            (directory / f"{name}_ids.txt").write_text("\n".join(ids) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Splits:
        data = json.loads((Path(directory) / "splits.json").read_text())
        return cls(*(np.asarray(data[k], dtype=object) for k in ("train", "val", "test")))


def split_groups(
    ids: np.ndarray,
    groups: np.ndarray,
    seed: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    stratify: np.ndarray | None = None,
) -> Splits:
    """Split records so that all records of one group (e.g. one patient's ECGs) land in the same split.

    The groups are split by :func:`split_participants`, stratified by the largest label in each group (a patient
    with any LVH record counts as a case).
    """
    ids, groups = np.asarray(ids, dtype=object), np.asarray(groups).astype(str)
    unique = np.unique(groups)
    labels = None
    if stratify is not None:
        per_group = {g: v for g, v in zip(groups, np.asarray(stratify))}
        for g, v in zip(groups, np.asarray(stratify)):
            per_group[g] = max(per_group[g], v)
        labels = np.asarray([per_group[g] for g in unique])
    by_group = split_participants(unique.astype(object), seed, fractions, labels)
    return Splits(*(np.sort(ids[np.isin(groups, part)].astype(str)) for part in (by_group.train, by_group.val,
                                                                                  by_group.test)))


MIN_STRATUM = 3
"""A class needs this many participants to be a stratum of its own in the two-step split (one may go to test,
and two must remain to be split again); rarer classes share one pooled stratum."""


def stratification_strata(labels: np.ndarray) -> np.ndarray:
    """Labels a stratified split can honour: classes rarer than :data:`MIN_STRATUM` are pooled, and a pool that
    is still too small joins the most frequent class (a rare class then spreads at random, but the split runs)."""
    labels = np.asarray(labels).astype(str)
    values, counts = np.unique(labels, return_counts=True)
    rare = set(values[counts < MIN_STRATUM])
    if not rare:
        return labels
    pooled = np.where(np.isin(labels, list(rare)), "__rare__", labels)
    if np.sum(pooled == "__rare__") < MIN_STRATUM:
        common = values[np.argmax(counts)]
        pooled = np.where(pooled == "__rare__", common, pooled)
    return pooled


def split_participants(
    ids: np.ndarray,
    seed: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    stratify: np.ndarray | None = None,
) -> Splits:
    """Split participant ids into train/validation/test.

    Args:
        ids: unique participant ids.
        seed: the split's seed; the same seed and ids give the same split.
        fractions: train, validation and test shares (they must sum to 1).
        stratify: class labels per id for categorical targets, or None.
    """
    ids = np.asarray(ids, dtype=object)
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("participant ids must be unique before splitting")
    check_fractions(fractions)
    train_frac, val_frac, test_frac = fractions
    order = np.argsort(ids.astype(str), kind="stable")  # independent of the table's row order
    ids = ids[order]
    labels = None if stratify is None else stratification_strata(np.asarray(stratify)[order])
    rest_ids, test_ids, rest_labels, _ = train_test_split(
        ids, labels if labels is not None else np.zeros(len(ids)), test_size=test_frac, random_state=seed,
        stratify=labels,
    )
    train_ids, val_ids = train_test_split(
        rest_ids, test_size=val_frac / (train_frac + val_frac), random_state=seed + 1,
        stratify=rest_labels if labels is not None else None,
    )
    return Splits(np.sort(train_ids.astype(str)), np.sort(val_ids.astype(str)), np.sort(test_ids.astype(str)))
