"""What the report draws but a run folder may not have saved, computed from arrays (no store, no bundle).

``aiecg report`` only renders; where a run folder lacks a curve's saved file, ``workflows/report.py`` computes it
here and hands it to the page. The evaluation writes the same file (``roc_band.csv``) once it saves it itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from aiecg.evaluate.bootstrap import as_generator, resample_indices

ROC_BAND_FILE = "roc_band.csv"


def roc_band(labels: np.ndarray, scores: np.ndarray, grid: np.ndarray | None = None, n_resamples: int = 200,
             seed: int = 0) -> pd.DataFrame:
    """Pointwise 95% band of the ROC curve by a stratified bootstrap with vertical averaging (sensitivity at
    fixed 1 - specificity; Macskassy & Provost 2004): columns ``fpr``, ``tpr_low``, ``tpr_high``."""
    grid = np.linspace(0, 1, 101) if grid is None else grid
    curves = []
    for block in resample_indices(len(labels), n_resamples, as_generator(seed), stratify=labels):  # THE bootstrap
        for idx in block:
            fpr, tpr, _ = roc_curve(labels[idx], scores[idx])
            curves.append(np.interp(grid, fpr, tpr))
    return pd.DataFrame({"fpr": grid, "tpr_low": np.quantile(curves, 0.025, axis=0),
                         "tpr_high": np.quantile(curves, 0.975, axis=0)})
