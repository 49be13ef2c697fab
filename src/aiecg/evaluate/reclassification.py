"""Reclassification of participants by the model against a classic ECG-LVH criterion: the categorical net
reclassification improvement (NRI) with two categories, LVH called or not.

Pencina MJ, D'Agostino RB Sr, D'Agostino RB Jr, Vasan RS. Evaluating the added predictive ability of a new marker:
from area under the ROC curve to reclassification and beyond. Stat Med 2008;27:157-172.
Leening MJG, Vedder MM, Witteman JCM, Pencina MJ, Steyerberg EW. Net reclassification improvement: computation,
interpretation, and controversies. Ann Intern Med 2014;160:122-131.

The criterion's call at its published cut-off is the old classification, the model's call at its operating point
(the threshold chosen on the validation split) the new one. Among events (CMR LVH) a move up (called by the model,
not by the criterion) is right and a move down wrong; among non-events the reverse:

    NRI_events = (up - down) / events,    NRI_non-events = (down - up) / non-events.

With two categories these are the differences in sensitivity and in specificity. As Leening et al. ask, the two are
reported separately, with the counts that make them: their sum (the "total NRI") is not a proportion, weighs events
and non-events equally whatever the prevalence, and can hide a loss in one group behind a gain in the other; it is
given only beside them.

Intervals: percentile bootstrap (:func:`aiecg.evaluate.bootstrap.bootstrap_ci`) over participants, stratified by
the outcome (events and non-events keep their numbers, as the two NRIs are conditional on them), each
participant's two calls kept together.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from aiecg.evaluate.bootstrap import SeedLike, bootstrap_ci


def nri_events(labels: np.ndarray, old: np.ndarray, new: np.ndarray, axis: int = -1) -> np.ndarray:
    """(up - down) / events: the net share of events the new calls move up (vectorised along ``axis``)."""
    y = np.asarray(labels, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(y * (new - old), axis=axis) / np.sum(y, axis=axis)


def nri_non_events(labels: np.ndarray, old: np.ndarray, new: np.ndarray, axis: int = -1) -> np.ndarray:
    """(down - up) / non-events: the net share of non-events the new calls move down."""
    y = np.asarray(labels, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum((1 - y) * (old - new), axis=axis) / np.sum(1 - y, axis=axis)


def nri_total(labels: np.ndarray, old: np.ndarray, new: np.ndarray, axis: int = -1) -> np.ndarray:
    """NRI_events + NRI_non-events (not a proportion: Leening et al. 2014)."""
    return nri_events(labels, old, new, axis=axis) + nri_non_events(labels, old, new, axis=axis)


STATISTICS = {"nri_events": nri_events, "nri_non_events": nri_non_events, "nri_total": nri_total}

COLUMNS = ("criterion", "model_threshold", "n", "events", "non_events", "events_up", "events_down",
           "non_events_up", "non_events_down",
           *(f"{name}{end}" for name in STATISTICS for end in ("", "_low", "_high")))


def reclassification(labels: np.ndarray, old_calls: np.ndarray, new_calls: np.ndarray, *, seed: SeedLike,
                     n_resamples: int = 1000) -> dict[str, float]:
    """The categorical NRI of ``new_calls`` over ``old_calls`` (1 called, 0 not, NaN unknown) on the participants
    where the label and both calls are known: counts of events and non-events moved up and down, and each NRI with
    its bootstrap 95% interval (NaN where a class is missing)."""
    y, old, new = (np.asarray(a, float) for a in (labels, old_calls, new_calls))
    keep = np.isfinite(y) & np.isfinite(old) & np.isfinite(new)
    y, old, new = y[keep], old[keep], new[keep]
    if not np.all(np.isin(y, (0, 1))) or not np.all(np.isin(old, (0, 1))) or not np.all(np.isin(new, (0, 1))):
        raise ValueError("labels and calls must be 0/1 (NaN: unknown)")
    event = y == 1
    row: dict[str, float] = {
        "n": int(len(y)), "events": int(event.sum()), "non_events": int((~event).sum()),
        "events_up": int(np.sum(event & (new > old))), "events_down": int(np.sum(event & (new < old))),
        "non_events_up": int(np.sum(~event & (new > old))), "non_events_down": int(np.sum(~event & (new < old)))}
    for name, statistic in STATISTICS.items():
        if event.any() and (~event).any():
            ci = bootstrap_ci(statistic, y, old, new, n_resamples=n_resamples, seed=seed, stratify=y)
            row.update({name: ci.estimate, f"{name}_low": ci.low, f"{name}_high": ci.high})
        else:
            row.update({name: np.nan, f"{name}_low": np.nan, f"{name}_high": np.nan})
    return row


def reclassification_table(labels: np.ndarray, model_scores: np.ndarray, model_threshold: float,
                           criteria: Mapping[str, np.ndarray], *, seed: SeedLike,
                           n_resamples: int = 1000) -> pd.DataFrame:
    """The model's calls (``score >= model_threshold``) against each criterion's (``margin >= 0``: the margin over
    its published cut-off, as ``comparison_scores.csv`` saves it): one row per criterion (``COLUMNS``), each on the
    participants where the label, the model's score and the criterion are known; one seed for every row."""
    scores = np.asarray(model_scores, float)
    new = np.where(np.isfinite(scores), (scores >= model_threshold).astype(float), np.nan)
    rows = []
    for name, margin in criteria.items():
        margin = np.asarray(margin, float)
        old = np.where(np.isfinite(margin), (margin >= 0).astype(float), np.nan)
        rows.append({"criterion": name, "model_threshold": float(model_threshold),
                     **reclassification(labels, old, new, seed=seed, n_resamples=n_resamples)})
    return pd.DataFrame(rows, columns=list(COLUMNS))
