"""Metrics as pure functions returning values (point estimates; intervals come from ``bootstrap``)."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score


def _finite(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    arrays = tuple(np.asarray(a, dtype=float).ravel() for a in arrays)
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return tuple(a[keep] for a in arrays)


def compute_regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, mean error (prediction minus truth), Pearson and Spearman r, and n."""
    y_true, y_pred = _finite(y_true, y_pred)
    n = len(y_true)
    if n < 3:
        return {"n": n, "mae": float("nan"), "bias": float("nan"), "pearson_r": float("nan"),
                "spearman_r": float("nan")}
    constant = np.ptp(y_pred) == 0 or np.ptp(y_true) == 0
    return {
        "n": n,
        "mae": float(np.mean(np.abs(y_pred - y_true))),
        "bias": float(np.mean(y_pred - y_true)),
        "pearson_r": float("nan") if constant else float(stats.pearsonr(y_true, y_pred)[0]),
        "spearman_r": float("nan") if constant else float(stats.spearmanr(y_true, y_pred)[0]),
    }


def compute_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels, scores = _finite(labels, scores)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels.astype(int), scores))


def compute_binary_metrics(labels: np.ndarray, calls: np.ndarray) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV and F1 of binary calls against binary labels."""
    labels, calls = (x.astype(int) for x in _finite(labels, calls))
    tp = int(np.sum((calls == 1) & (labels == 1)))
    tn = int(np.sum((calls == 0) & (labels == 0)))
    fp = int(np.sum((calls == 1) & (labels == 0)))
    fn = int(np.sum((calls == 0) & (labels == 1)))

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    ppv, sens = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "n": len(labels), "positives": tp + fn, "tp": tp, "tn": tn, "fp": fp, "fn": fn,
        "sensitivity": sens, "specificity": ratio(tn, tn + fp), "ppv": ppv, "npv": ratio(tn, tn + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }
