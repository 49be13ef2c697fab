"""Per-epoch index sets that rebalance categorical targets (``--oversample`` / ``--undersample``).

Both are redrawn every epoch from a generator seeded by (seed, epoch), so runs are reproducible and a resumed
run draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import numpy as np

SAMPLING_MODES = ("none", "oversample", "undersample")


def epoch_indices(n: int, labels: np.ndarray | None, mode: str, seed: int, epoch: int) -> np.ndarray:
    """Training-row indices for one epoch, in shuffled order.

    Args:
        n: training rows.
        labels: class per training row (None for regression: plain shuffling).
        mode: 'none' (every row once), 'oversample' (every class drawn with replacement up to the largest
            class's count), 'undersample' (every class drawn without replacement down to the smallest count).
        seed, epoch: the draw's seed.
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, got {mode!r}")
    rng = np.random.default_rng([seed, epoch])
    if labels is None or mode == "none":
        return rng.permutation(n)
    labels = np.asarray(labels)
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    target = max(map(len, classes)) if mode == "oversample" else min(map(len, classes))
    chosen = [
        np.concatenate([members, rng.choice(members, target - len(members), replace=True)])
        if mode == "oversample" else rng.choice(members, target, replace=False)
        for members in classes
    ]
    return rng.permutation(np.concatenate(chosen))
