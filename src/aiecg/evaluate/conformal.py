"""Split-conformal prediction intervals for regression outputs (Lei, G'Sell, Rinaldo, Tibshirani & Wasserman,
"Distribution-free predictive inference for regression", JASA 2018;113:1094-1111).

The absolute residuals |y - y_hat| of a fitted model on a calibration set the model never trained on (here the
validation split) are its nonconformity scores. For a new participant exchangeable with the calibration set,
``y_hat +- q`` with ``q`` the ``ceil((n + 1) * level)``-th smallest of the n scores covers the true value with
probability at least ``level`` (marginally, over participants; not conditionally on the value).

Men and women differ in LV mass and in how well the ECG predicts it, so one pooled quantile over-covers one sex
and under-covers the other. Intervals are therefore Mondrian (category-conditional) by sex (Vovk, Lindsay,
Nouretdinov & Gammerman, "Mondrian confidence machine", 2003; Vovk, Gammerman & Shafer, *Algorithmic Learning
in a Random World*, 2005, ch. 4): each sex gets the quantile of its own calibration scores, which guarantees
the level within each sex. The pooled scores are kept for a participant of unknown sex (marginal coverage) and
for bundles saved before the sexes were kept apart. The sorted scores are stored, so any level can be served
later; where ``ceil((n + 1) * level) > n`` a calibration set is too small for that level and the interval is
infinite, as the method prescribes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiecg.data.targets import TargetSpec

METHOD = "split-conformal, absolute residual (Lei et al. 2018)"
MONDRIAN_METHOD = "split-conformal, absolute residual, Mondrian by sex (Lei et al. 2018; Vovk et al. 2003)"
SEX_GROUPS = {"male": 1, "female": 0}
"""Calibration groups and their ``is_male`` code."""
REPORT_LEVELS = (0.8, 0.9, 0.95)


def _order_statistic(scores: np.ndarray, level: float) -> float:
    rank = math.ceil((len(scores) + 1) * level)
    return float(scores[rank - 1]) if rank <= len(scores) else math.inf


@dataclass(frozen=True)
class ConformalIntervals:
    """Sorted absolute validation residuals per regression output (target units), the data of the intervals.

    Attributes:
        residuals: output name (e.g. ``INDEXED_MASS``) -> sorted absolute residuals of the whole calibration set.
        calibration: where the residuals come from (``validation split``).
        groups: ``male``/``female`` -> output name -> that sex's sorted residuals (Mondrian intervals); empty for
            pooled (marginal) intervals only.
    """

    residuals: dict[str, np.ndarray]
    calibration: str = "validation split"
    groups: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return MONDRIAN_METHOD if self.groups else METHOD

    def quantile(self, output: str, level: float, group: str | None = None) -> float:
        """The half-width ``q`` of the ``level`` interval of ``output`` for ``group`` (``male``/``female``; None
        or a bundle without groups: the pooled one); ``inf`` if that calibration set is too small for the level."""
        if not 0 < level < 1:
            raise ValueError(f"interval level must lie in (0, 1), got {level}")
        if group is not None and self.groups:
            return _order_statistic(self.groups[group][output], level)
        return _order_statistic(self.residuals[output], level)

    def half_widths(self, outputs: Sequence[str], level: float, is_male: np.ndarray | None) -> np.ndarray:
        """Half-widths [n, len(outputs)] for participants coded ``is_male`` (1/0; NaN: unknown sex, pooled)."""
        pooled = np.asarray([self.quantile(name, level) for name in outputs], dtype=float)
        if is_male is None:
            return pooled[None, :]
        is_male = np.asarray(is_male, dtype=float)
        half = np.tile(pooled, (len(is_male), 1))
        if self.groups:
            for group, code in SEX_GROUPS.items():
                half[is_male == code] = [self.quantile(name, level, group) for name in outputs]
        return half

    def intervals(self, y_pred: np.ndarray, outputs: Sequence[str], level: float,
                  is_male: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds [n, len(outputs)] around predictions ``y_pred`` [n, len(outputs)] of
        participants coded ``is_male`` (None: the pooled interval for everyone)."""
        y_pred = np.asarray(y_pred, dtype=float)
        half = self.half_widths(outputs, level, is_male)
        return y_pred - half, y_pred + half

    def to_dict(self) -> dict[str, Any]:
        def lists(residuals: dict[str, np.ndarray]) -> dict[str, list[float]]:
            return {k: [float(x) for x in v] for k, v in residuals.items()}

        out = {"method": self.method, "calibration": self.calibration,
               "n": {k: len(v) for k, v in self.residuals.items()}, "residuals": lists(self.residuals)}
        if self.groups:
            out["groups"] = {g: lists(r) for g, r in self.groups.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConformalIntervals | None:
        """The intervals saved in a bundle (``bundle.thresholds["conformal"]``), or None if it has none."""
        if not data:
            return None

        def arrays(residuals: dict[str, Any]) -> dict[str, np.ndarray]:
            return {k: np.sort(np.asarray(v, dtype=float)) for k, v in residuals.items()}

        return cls(arrays(data["residuals"]), str(data.get("calibration", "validation split")),
                   {g: arrays(r) for g, r in (data.get("groups") or {}).items()})


def fit_conformal(y_true: np.ndarray, y_pred: np.ndarray, outputs: Sequence[str],
                  calibration: str = "validation split", is_male: np.ndarray | None = None) -> ConformalIntervals:
    """Calibrate on held-out data (the validation split, never the training or test split).

    Args:
        y_true, y_pred: true values and predictions in target units [n, len(outputs)]; rows with a missing
            true value are skipped.
        outputs: the output names, in column order.
        is_male: the calibration participants' sex (1/0); given, the intervals are Mondrian by sex (rows of
            unknown sex count only in the pooled scores).
    """
    y_true = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)

    def sorted_scores(rows: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for k, name in enumerate(outputs):
            scores = np.abs(y_true[rows, k] - y_pred[rows, k])
            out[name] = np.sort(scores[np.isfinite(scores)])
        return out

    everyone = np.ones(len(y_true), dtype=bool)
    groups = {}
    if is_male is not None:
        is_male = np.asarray(is_male, dtype=float)
        groups = {group: sorted_scores(is_male == code) for group, code in SEX_GROUPS.items()}
    return ConformalIntervals(sorted_scores(everyone), calibration, groups)


def _coverage(truth: np.ndarray, pred: np.ndarray, half: np.ndarray) -> dict[str, Any]:
    ok = np.isfinite(truth) & np.isfinite(pred)
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "coverage": None, "mean_width": None}
    covered = np.abs(truth[ok] - pred[ok]) <= half[ok]
    return {"n": n, "coverage": float(covered.mean()), "mean_width": float(2 * half[ok].mean())}


def coverage_report(conformal: ConformalIntervals, spec: TargetSpec, table: pd.DataFrame,
                    levels: Sequence[float] = REPORT_LEVELS) -> dict[str, Any]:
    """Empirical coverage and mean width of the intervals on a results table (``{stem}_true``/``{stem}_pred``,
    ``is_m``), overall and by sex, per output and level, each participant with the interval of their sex. Mondrian
    intervals should cover near the level within each sex; pooled ones (older bundles) only overall."""
    report: dict[str, Any] = {"method": conformal.method, "calibration": conformal.calibration}
    is_male = table["is_m"].to_numpy(dtype=float) if "is_m" in table else None
    for name, stem in zip(spec.outputs, spec.stems):
        truth = table[f"{stem}_true"].to_numpy(dtype=float)
        pred = table[f"{stem}_pred"].to_numpy(dtype=float)
        per_level = {}
        for level in levels:
            half = np.broadcast_to(conformal.half_widths([name], level, is_male)[:, 0], truth.shape)
            entry = {"overall": _coverage(truth, pred, half)}
            if is_male is not None:
                for label, code in SEX_GROUPS.items():
                    rows = is_male == code
                    entry[label] = _coverage(truth[rows], pred[rows], half[rows])
            per_level[f"{level:g}"] = entry
        report[stem] = {"n_calibration": len(conformal.residuals[name]), "levels": per_level}
        if conformal.groups:
            report[stem]["n_calibration_by_sex"] = {g: len(r[name]) for g, r in conformal.groups.items()}
    return report
