"""Decision-curve analysis: the net benefit of acting on a prediction across threshold probabilities.

Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction models. Med Decis Making
2006;26:565-574. A threshold probability ``pt`` states how a clinician weighs a missed case against an unneeded
work-up (odds ``pt / (1 - pt)``); treating everyone whose risk is at least ``pt`` has net benefit

    NB(pt) = TP / n - FP / n * pt / (1 - pt),

in units of true positives per participant. Treat-none has NB 0 at every threshold; treat-all has
``prevalence - (1 - prevalence) * pt / (1 - pt)``. A binary rule (an ECG-LVH criterion at its published cut-off)
treats the same participants at every threshold, so its TP and FP are fixed and its curve is that formula in
``pt``: a straight line in the threshold odds, no longer flat. A model is useful at ``pt`` when its NB exceeds both
treat-all and treat-none there.

Intervals: pointwise percentile bands from the one bootstrap (:func:`aiecg.evaluate.bootstrap.bootstrap_band`),
resampling participants without stratification, so that the prevalence, and with it treat-all, varies between
resamples as it would between samples (Vickers AJ, Cronin AM, Elkin EB, Gonen M. Extensions to decision curve
analysis. BMC Med Inform Decis Mak 2008;8:53).

Pure statistics on arrays: labels and scores in, numbers out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from aiecg.evaluate.bootstrap import SeedLike, bootstrap_band

THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)
"""The default grid of threshold probabilities: 1% to 99% in steps of 1%."""

COLUMNS = ("strategy", "kind", "threshold", "net_benefit", "low", "high", "n", "events")


def threshold_odds(thresholds: np.ndarray) -> np.ndarray:
    """``pt / (1 - pt)``: the weight of a false positive against a true positive at threshold ``pt``.

    Raises:
        ValueError: a threshold outside (0, 1).
    """
    pt = np.asarray(thresholds, dtype=float)
    if pt.ndim != 1 or pt.size == 0 or not np.all((pt > 0) & (pt < 1)):
        raise ValueError("threshold probabilities must be a non-empty 1-D array inside (0, 1)")
    return pt / (1 - pt)


def net_benefit(labels: np.ndarray, treated: np.ndarray, threshold: float) -> float:
    """Net benefit of treating ``treated`` (booleans) at threshold probability ``threshold``:
    ``TP/n - FP/n * pt/(1-pt)`` (Vickers & Elkin 2006, eq. 1)."""
    y, t = np.asarray(labels, dtype=float), np.asarray(treated, dtype=bool)
    if y.shape != t.shape or y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels and treated must be 1-D of one non-empty length, got {y.shape} and {t.shape}")
    odds = float(threshold_odds(np.array([threshold]))[0])
    n = y.size
    return float(np.sum(t & (y == 1)) / n - np.sum(t & (y == 0)) / n * odds)


def treatment_levels(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each participant, at how many of the (ascending) thresholds they are treated: ``score >= pt_j`` holds
    exactly for ``j < level``. A binary call is level ``len(thresholds)`` (treated) or 0."""
    pt = np.asarray(thresholds, dtype=float)
    if np.any(np.diff(pt) <= 0):
        raise ValueError("thresholds must be strictly increasing")
    return np.searchsorted(pt, np.asarray(scores, dtype=float), side="right")


def _net_benefit_curve(labels: np.ndarray, levels: np.ndarray, *, odds: np.ndarray, axis: int = -1) -> np.ndarray:
    """Net benefit at every threshold for blocks ``[b, n]`` of labels and treatment levels -> ``[b, k]``.

    Vectorised for :func:`bootstrap_band`: counts of positives and of all participants per level (one
    ``bincount`` per block), summed from the top level down, give TP and TP + FP at every threshold at once.
    """
    if axis not in (-1, 1):
        raise ValueError("the net-benefit curve reduces along the last axis")
    y, level = np.atleast_2d(labels), np.atleast_2d(levels).astype(np.int64)
    b, n = y.shape
    k = odds.size
    flat = (np.arange(b)[:, None] * (k + 1) + level).ravel()
    positives = np.bincount(flat, weights=y.ravel(), minlength=b * (k + 1)).reshape(b, k + 1)
    everyone = np.bincount(flat, minlength=b * (k + 1)).reshape(b, k + 1)
    # treated at threshold j: level > j, i.e. the sum over levels j+1..k
    tp = np.cumsum(positives[:, ::-1], axis=1)[:, ::-1][:, 1:]
    treated = np.cumsum(everyone[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return tp / n - (treated - tp) / n * odds


def net_benefit_curve(labels: np.ndarray, levels: np.ndarray, thresholds: np.ndarray = THRESHOLDS, *,
                      n_resamples: int = 1000, seed: SeedLike, confidence: float = 0.95) -> pd.DataFrame:
    """Net benefit with its pointwise bootstrap band at each threshold, for one strategy given as treatment
    levels (:func:`treatment_levels`); columns ``threshold, net_benefit, low, high``."""
    odds = threshold_odds(thresholds)
    y = np.asarray(labels, dtype=float)
    band = bootstrap_band(lambda a, b, axis=-1: _net_benefit_curve(a, b, odds=odds, axis=axis), y,
                          np.asarray(levels), n_resamples=n_resamples, seed=seed, confidence=confidence)
    return pd.DataFrame({"threshold": np.asarray(thresholds, dtype=float), "net_benefit": band.estimate,
                         "low": band.low, "high": band.high})


def decision_curves(labels: np.ndarray, model: Mapping[str, np.ndarray], calls: Mapping[str, np.ndarray],
                    thresholds: np.ndarray = THRESHOLDS, *, n_resamples: int = 1000, seed: SeedLike,
                    confidence: float = 0.95) -> pd.DataFrame:
    """The decision curves of a model's probabilities against binary rules, treat-all and treat-none.

    Args:
        labels: the outcome (1 LVH, 0 not; NaN unknown: left out).
        model: ``{name: probabilities}``; the first is the reference whose participants (label and probability
            known) every row is computed on; further probability scores are rows of kind ``model``.
        calls: ``{name: binary calls}`` (1 positive, 0 negative, NaN unknown), rows of kind ``criterion``, each on
            the reference's participants where its call is known (``n`` says how many).
        thresholds: increasing threshold probabilities inside (0, 1).
        n_resamples, seed, confidence: the bootstrap's (one seed: every row sees the same resamples when it has
            the same participants).

    Returns:
        A long table (``COLUMNS``): one row per strategy and threshold, with the net benefit, its band, and the
        participants and events it was computed on. Strategies: each model, ``treat all``, ``treat none`` and
        each criterion.
    """
    if not model:
        raise ValueError("decision_curves needs at least one model probability")
    pt = np.asarray(thresholds, dtype=float)
    y_all = np.asarray(labels, dtype=float)
    names = list(model)
    reference = np.asarray(model[names[0]], dtype=float)
    base = np.isfinite(y_all) & np.isfinite(reference)
    if not np.all(np.isin(y_all[base], (0, 1))):
        raise ValueError("labels must be 0 or 1 (NaN: unknown)")
    if np.any((reference[base] < 0) | (reference[base] > 1)):
        raise ValueError(f"{names[0]}: decision curves need probabilities in [0, 1]")
    k = pt.size
    strategies: list[tuple[str, str, np.ndarray, np.ndarray]] = []  # name, kind, rows used, levels
    for name in names:
        scores = np.asarray(model[name], dtype=float)
        keep = base & np.isfinite(scores)
        strategies.append((name, "model", keep, treatment_levels(scores[keep], pt)))
    strategies.append(("treat all", "treat all", base, np.full(int(base.sum()), k)))
    strategies.append(("treat none", "treat none", base, np.zeros(int(base.sum()), dtype=int)))
    for name, values in calls.items():
        call = np.asarray(values, dtype=float)
        keep = base & np.isfinite(call)
        strategies.append((name, "criterion", keep, np.where(call[keep] >= 0.5, k, 0)))
    frames = []
    for name, kind, keep, levels in strategies:
        y = y_all[keep]
        if y.size == 0:
            continue
        curve = net_benefit_curve(y, levels, pt, n_resamples=n_resamples, seed=seed, confidence=confidence)
        curve.insert(0, "kind", kind)
        curve.insert(0, "strategy", name)
        curve["n"], curve["events"] = int(y.size), int(y.sum())
        frames.append(curve)
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]
