"""Cohort selection and splits: who is usable, who goes where, and the fingerprint of a split.

These decide which participants a run sees; training, fine-tuning and evaluation all call them, so they live
in ``data/`` (before any model or statistic).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from aiecg.data.cohort import GROUP, ID, SPLIT, Cohort
from aiecg.data.splits import Splits, split_groups, split_participants
from aiecg.data.store import STATUS_OK, Store
from aiecg.data.targets import TargetSpec
from aiecg.errors import CohortError
from aiecg.signal.quality import PACING_NOT_CHECKED

log = logging.getLogger("aiecg")


def ids_digest(ids: np.ndarray) -> str:
    """A short fingerprint of a set of participant ids (order-free)."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:16]


def usable_cohort(cohort: Cohort, store: Store, include_paced: bool = False) -> Cohort:
    """Drop participants whose ECG is missing from the store or failed QC, and (unless ``include_paced``) those
    whose ECG is paced, recording each reason."""
    index = store.index.set_index("id")
    status = cohort.frame[ID].map(index["status"]).fillna("not in store")
    reason = cohort.frame[ID].map(index["reason"]).fillna("")
    why = [f"ECG {s}" + (f": {r}" if r else "") for s, r in zip(status, reason)]
    bad = status != STATUS_OK
    if not include_paced and "paced" in index.columns:
        paced = cohort.frame[ID].map(index["paced"]).fillna("").astype(str)
        for i in np.flatnonzero((~bad & (paced != "")).to_numpy()):
            why[i] = f"ECG paced ({paced.iloc[i]} pacing): excluded by default (include_paced keeps it)"
        bad = bad | (paced != "")
    extra = pd.DataFrame({"row": np.nan, ID: cohort.frame.loc[bad, ID], "reason": np.asarray(why, dtype=object)[bad]})
    exclusions = pd.concat([cohort.exclusions, extra], ignore_index=True) if len(extra) else cohort.exclusions
    return Cohort(cohort.mapping, cohort.frame.loc[~bad].reset_index(drop=True), exclusions)


def paced_record(include_paced: bool, store: Store) -> bool | None:
    """What a bundle trained on ``store`` records as ``include_paced`` (:func:`aiecg.contract.input_contract`):
    the run's setting, or None (unknown) where the run left paced ECGs out but the store cannot tell them all:
    it has no ``paced`` column (prepared before aiecg flagged pacing) or holds records whose rate was too low to
    look for pacing spikes, so :func:`usable_cohort` kept whatever paced ECGs were among them."""
    if include_paced:
        return True
    notes = store.index["qc_notes"] if "qc_notes" in store.index.columns else pd.Series([], dtype=str)
    unchecked = notes.fillna("").astype(str).str.contains(PACING_NOT_CHECKED, regex=False).any()
    return None if "paced" not in store.index.columns or unchecked else False


def stratification_labels(frame: pd.DataFrame, spec: TargetSpec) -> np.ndarray | None:
    """Labels to stratify the split by: the class for categorical targets, LVH for mass targets."""
    if spec.is_categorical:
        return frame[spec.outputs[0]].to_numpy()
    if "LVH" in frame and frame["LVH"].notna().all():
        return frame["LVH"].to_numpy()
    return None


def make_splits(frame: pd.DataFrame, spec: TargetSpec, seed: int, fractions: tuple[float, float, float]) -> Splits:
    """The cohort's predefined split when its YAML names one (e.g. PTB-XL's folds), else a seeded
    participant-level split stratified by :func:`stratification_labels` (by group when the YAML names a group
    column, so one patient's records never straddle splits)."""
    if SPLIT in frame:
        parts = [np.sort(frame.loc[frame[SPLIT] == name, ID].to_numpy(dtype=str)) for name in ("train", "val", "test")]
        empty = [name for name, ids in zip(("train", "val", "test"), parts) if len(ids) == 0]
        if empty:
            raise CohortError(f"the cohort's predefined split leaves {empty} empty")
        splits = Splits(*parts)
    elif GROUP in frame:
        splits = split_groups(frame[ID].to_numpy(), frame[GROUP].to_numpy(), seed, fractions,
                              stratification_labels(frame, spec))
    else:
        splits = split_participants(frame[ID].to_numpy(), seed, fractions, stratification_labels(frame, spec))
    warn_without_lvh(frame, splits)
    return splits


def warn_without_lvh(frame: pd.DataFrame, splits: Splits) -> list[str]:
    """Warn, naming them, about splits without an LVH case (or without a participant free of LVH) where the cohort
    has LVH labels: their LVH metrics, thresholds and post-hoc models cannot be computed (``lvh_cases`` 0, AUROC
    empty). Returns the warnings."""
    if "LVH" not in frame:
        return []
    warnings = []
    for name in ("train", "val", "test"):
        labels = lvh_labels(frame, getattr(splits, name))
        labels = labels[np.isfinite(labels)]
        if len(labels) and (labels.sum() == 0 or labels.sum() == len(labels)):
            what = "no LVH case" if labels.sum() == 0 else "no participant without LVH"
            warnings.append(f"the {name} split has {what} among its {len(labels)} labelled participants: its LVH "
                            "metrics, threshold and post-hoc models cannot be computed; use a larger cohort, "
                            "another --split-seed or other --split-fractions")
            log.warning(warnings[-1])
    return warnings


def lvh_labels(frame: pd.DataFrame, ids: np.ndarray) -> np.ndarray | None:
    return frame.set_index(ID)["LVH"].reindex(ids).to_numpy(dtype=float) if "LVH" in frame else None

