"""The precision-recall figure draws the saved curves so that the model's step encloses its average precision, at
the sample's prevalence and re-weighted to the target prevalence, each with its band."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from aiecg.evaluate import curves
from aiecg.report.figures import pr_curves
from aiecg.report.runs import RunData


def test_the_model_step_starts_at_recall_zero_and_encloses_the_average_precision():
    rng = np.random.default_rng(1)
    labels = (rng.random(120) < 0.3).astype(float)
    model, criterion = labels + rng.normal(0, 1, 120), labels * 0.5 + rng.normal(0, 1, 120)
    labels[0], model[0] = 1, 10.0  # the highest score is a case: the first operating point has recall > 0
    rows = [("lvh_proba", "model", model), ("Cornell voltage", "criterion", criterion)]
    run = RunData(Path("run"), "run", "evaluate", pr_curves=curves.pr_table(labels, rows, 0.05),
                  pr_band=curves.pr_bands(labels, model, 0.05, n_resamples=20))
    plot = pr_curves([run])
    sample, target = [ax for ax in plot.figure.axes if ax.get_xlabel()]
    assert f"sample's prevalence {labels.mean():.2f}" in sample.get_title()
    assert "target prevalence 0.05" in target.get_title()
    line = next(line for line in sample.lines if line.get_label().startswith("model"))
    x, y = line.get_xdata(), line.get_ydata()
    assert x[0] == 0 and line.get_drawstyle() == "steps-pre"
    assert np.sum(np.diff(x) * y[1:]) == pytest.approx(average_precision_score(labels, model))
    assert len(sample.collections) >= 1 and len(target.collections) >= 1  # the bands
    colours = {line.get_color() for line in sample.lines if line.get_label() == "Cornell voltage"}
    assert colours and line.get_color() not in colours  # no criterion in the model's colour
