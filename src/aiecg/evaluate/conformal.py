"""Split-conformal prediction intervals for regression outputs (Lei, G'Sell, Rinaldo, Tibshirani & Wasserman,
"Distribution-free predictive inference for regression", JASA 2018;113:1094-1111).

The absolute residuals |y - y_hat| of a fitted model on a calibration set the model never trained on (here the
validation split) are its nonconformity scores. For a new participant exchangeable with the calibration set,
``y_hat +- q`` with ``q`` the ``ceil((n + 1) * level)``-th smallest of the n scores covers the true value with
probability at least ``level`` (marginally, over participants; not conditionally on sex or on the value).
The sorted scores are stored, so any level can be served later; where ``ceil((n + 1) * level) > n`` the
calibration set is too small for that level and the interval is infinite, as the method prescribes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aiecg.data.targets import TargetSpec

METHOD = "split-conformal, absolute residual (Lei et al. 2018)"
REPORT_LEVELS = (0.8, 0.9, 0.95)


@dataclass(frozen=True)
class ConformalIntervals:
    """Sorted absolute validation residuals per regression output (target units), the data of the intervals.

    Attributes:
        residuals: output name (e.g. ``INDEXED_MASS``) -> sorted absolute residuals of the calibration set.
        calibration: where the residuals come from (``validation split``).
    """

    residuals: dict[str, np.ndarray]
    calibration: str = "validation split"

    def quantile(self, output: str, level: float) -> float:
        """The half-width ``q`` of the ``level`` interval of ``output`` (``inf`` if the calibration set is too
        small for that level)."""
        if not 0 < level < 1:
            raise ValueError(f"interval level must lie in (0, 1), got {level}")
        scores = self.residuals[output]
        rank = math.ceil((len(scores) + 1) * level)
        return float(scores[rank - 1]) if rank <= len(scores) else math.inf

    def intervals(self, y_pred: np.ndarray, outputs: Sequence[str], level: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds [n, len(outputs)] around predictions ``y_pred`` [n, len(outputs)]."""
        half = np.asarray([self.quantile(name, level) for name in outputs], dtype=float)
        y_pred = np.asarray(y_pred, dtype=float)
        return y_pred - half, y_pred + half

    def to_dict(self) -> dict[str, Any]:
        return {"method": METHOD, "calibration": self.calibration,
                "n": {k: len(v) for k, v in self.residuals.items()},
                "residuals": {k: [float(x) for x in v] for k, v in self.residuals.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConformalIntervals | None:
        """The intervals saved in a bundle (``bundle.thresholds["conformal"]``), or None if it has none."""
        if not data:
            return None
        return cls({k: np.sort(np.asarray(v, dtype=float)) for k, v in data["residuals"].items()},
                   str(data.get("calibration", "validation split")))


def fit_conformal(y_true: np.ndarray, y_pred: np.ndarray, outputs: Sequence[str],
                  calibration: str = "validation split") -> ConformalIntervals:
    """Calibrate on held-out data (the validation split, never the training or test split).

    Args:
        y_true, y_pred: true values and predictions in target units [n, len(outputs)]; rows with a missing
            true value are skipped.
        outputs: the output names, in column order.
    """
    y_true = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)
    residuals = {}
    for k, name in enumerate(outputs):
        scores = np.abs(y_true[:, k] - y_pred[:, k])
        residuals[name] = np.sort(scores[np.isfinite(scores)])
    return ConformalIntervals(residuals, calibration)


def _coverage(truth: np.ndarray, pred: np.ndarray, half: float) -> dict[str, Any]:
    ok = np.isfinite(truth) & np.isfinite(pred)
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "coverage": None, "mean_width": None}
    covered = np.abs(truth[ok] - pred[ok]) <= half
    return {"n": n, "coverage": float(covered.mean()), "mean_width": float(2 * half)}


def coverage_report(conformal: ConformalIntervals, spec: TargetSpec, table: pd.DataFrame,
                    levels: Sequence[float] = REPORT_LEVELS) -> dict[str, Any]:
    """Empirical coverage and mean width of the intervals on a results table (``{stem}_true``/``{stem}_pred``,
    ``is_m``), overall and by sex, per output and level. Coverage should be near the level overall; by sex it
    may deviate, since split-conformal guarantees marginal coverage only."""
    report: dict[str, Any] = {"method": METHOD, "calibration": conformal.calibration}
    is_male = table["is_m"].to_numpy() if "is_m" in table else None
    for name, stem in zip(spec.outputs, spec.stems):
        truth = table[f"{stem}_true"].to_numpy(dtype=float)
        pred = table[f"{stem}_pred"].to_numpy(dtype=float)
        per_level = {}
        for level in levels:
            half = conformal.quantile(name, level)
            entry = {"overall": _coverage(truth, pred, half)}
            if is_male is not None:
                for label, code in (("male", 1), ("female", 0)):
                    rows = is_male == code
                    entry[label] = _coverage(truth[rows], pred[rows], half)
            per_level[f"{level:g}"] = entry
        report[stem] = {"n_calibration": len(conformal.residuals[name]), "levels": per_level}
    return report
