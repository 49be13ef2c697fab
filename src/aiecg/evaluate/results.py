"""The results table: one row per participant, with the reference code's column names where they exist
(``eid, is_m, lvh_true, ilvm_true, ilvm_pred, lvh_pred_cutoff, lvh_proba``), so its notebooks read our output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiecg.data.targets import TargetSpec, TaskKind


def results_table(
    ids: np.ndarray, is_male: np.ndarray, spec: TargetSpec, y_true: np.ndarray, y_pred: np.ndarray,
    lvh_true: np.ndarray | None = None,
) -> pd.DataFrame:
    """Build the per-participant results table for one target.

    Args:
        ids, is_male: participant ids and sex (1 male).
        spec: the target.
        y_true: true values [n, outputs] (class index for HN, 0/1 for LVH); NaN where unknown.
        y_pred: predictions in target units [n, outputs] (probabilities for classification).
        lvh_true: the LVH label per participant, when the cohort has one.
    """
    table = pd.DataFrame({"eid": ids, "is_m": np.asarray(is_male, dtype=int)})
    if lvh_true is not None:
        table["lvh_true"] = lvh_true
    if spec.kind is TaskKind.REGRESSION:
        for k, stem in enumerate(spec.stems):
            table[f"{stem}_true"] = y_true[:, k]
            table[f"{stem}_pred"] = y_pred[:, k]
        if spec.lvh_thresholds is not None:
            table["lvh_pred_cutoff"] = spec.lvh_thresholds.classify(y_pred[:, 0], table["is_m"].to_numpy())
    elif spec.kind is TaskKind.BINARY:
        table["lvh_true"] = y_true[:, 0]
        table["lvh_proba"] = y_pred[:, 0]
        table["lvh_pred"] = (y_pred[:, 0] >= 0.5).astype(int)
    else:
        table[f"{spec.stem}_true"] = y_true[:, 0]
        table[f"{spec.stem}_pred"] = y_pred.argmax(axis=1)
        for k, name in enumerate(spec.classes[: y_pred.shape[1]]):
            table[f"{spec.stem}_proba_{name.lower().replace(' ', '_')}"] = y_pred[:, k]
    return table
