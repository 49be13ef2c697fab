"""Point metrics as pure functions returning values (intervals come from ``stats`` and ``bootstrap``)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def compute_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve over the finite pairs; NaN when only one class is present."""
    labels, scores = np.asarray(labels, dtype=float).ravel(), np.asarray(scores, dtype=float).ravel()
    keep = np.isfinite(labels) & np.isfinite(scores)
    labels, scores = labels[keep], scores[keep]
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels.astype(int), scores))
