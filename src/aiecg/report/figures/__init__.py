"""The report's figures, one module per family, each figure registered for the page
(:func:`aiecg.report.figures.base.register_figure`). Importing the package imports every module in it, so a new
figure is one new file here (or one module imported before the page is drawn).
"""

from __future__ import annotations

import importlib
import pkgutil

from aiecg.report.figures.base import (
    LEAD_ORDER,
    PROBABILITY_COLUMNS,
    Plot,
    draw_figures,
    register_figure,
    registered_figures,
    unregister_figure,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from aiecg.report.figures.agreement import bland_altman, predicted_vs_true  # noqa: E402
from aiecg.report.figures.beats import beat_grid, median_beats  # noqa: E402
from aiecg.report.figures.calibration import calibration_curves, lr_thresholding, regression_calibration  # noqa: E402
from aiecg.report.figures.decision import decision_curves  # noqa: E402
from aiecg.report.figures.discrimination import criteria_scores, forest_auroc, pr_curves, roc_curves  # noqa: E402
from aiecg.report.figures.explanations import explanation_plots  # noqa: E402
from aiecg.report.figures.reclassification import reclassification  # noqa: E402
from aiecg.report.figures.subgroups import subgroups  # noqa: E402
from aiecg.report.figures.training import training_curves  # noqa: E402

__all__ = ["LEAD_ORDER", "PROBABILITY_COLUMNS", "Plot", "beat_grid", "bland_altman", "calibration_curves",
           "criteria_scores", "decision_curves", "draw_figures", "explanation_plots", "forest_auroc",
           "lr_thresholding", "median_beats", "predicted_vs_true", "pr_curves", "reclassification", "register_figure",
           "registered_figures", "regression_calibration", "roc_curves", "subgroups", "training_curves",
           "unregister_figure"]
