"""Point metrics as pure functions returning values (intervals come from ``stats`` and ``bootstrap``)."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score


def compute_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve over the finite pairs; NaN when only one class is present."""
    labels, scores = np.asarray(labels, dtype=float).ravel(), np.asarray(scores, dtype=float).ravel()
    keep = np.isfinite(labels) & np.isfinite(scores)
    labels, scores = labels[keep], scores[keep]
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels.astype(int), scores))


def auroc_rows(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUROC of every row of ``scores`` against the 0/1 ``labels`` of the same row (blocks ``[b, n]`` as the
    bootstrap draws them), by the Mann-Whitney U statistic on average ranks (ties count one half, as in
    :func:`compute_auroc`): NaN for a row with one class. Every value must be finite (no pairs are dropped)."""
    labels = np.moveaxis(np.asarray(labels, dtype=float), axis, -1)
    scores = np.moveaxis(np.asarray(scores, dtype=float), axis, -1)
    if not (np.all(np.isfinite(labels)) and np.all(np.isfinite(scores))):
        raise ValueError("auroc_rows needs finite labels and scores; use compute_auroc to drop missing pairs")
    positive = labels > 0.5
    n_pos = positive.sum(axis=-1)
    n_neg = labels.shape[-1] - n_pos
    ranks = stats.rankdata(scores, axis=-1)
    u = np.sum(np.where(positive, ranks, 0.0), axis=-1) - n_pos * (n_pos + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
