"""The decision-curve figure draws the saved decision_curve.csv, and only it."""

from pathlib import Path

import numpy as np
import pytest

from aiecg.evaluate.decision import decision_curves
from aiecg.report import figures
from aiecg.report.runs import RunData


def _run(tmp_path: Path) -> RunData:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.1).astype(float)
    p = np.clip(0.1 + 0.5 * (y - 0.1) + rng.normal(0, 0.12, 500), 0.001, 0.999)
    calls = (rng.random(500) < np.where(y == 1, 0.35, 0.08)).astype(float)
    curve = decision_curves(y, {"FCN (INDEXED_MASS)": p}, {"Sokolow-Lyon": calls}, n_resamples=100, seed=0)
    return RunData(path=tmp_path, label="fcn", kind="evaluate", decision_curve=curve)


def test_the_figure_draws_every_saved_strategy(tmp_path):
    plot = figures.decision_curves([_run(tmp_path)])
    assert plot.figure is not None and not plot.notes
    ax = plot.figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"FCN (INDEXED_MASS) (n=500)", "treat all", "treat none", "Sokolow-Lyon (n=500)"}
    table = _run(tmp_path).decision_curve
    saved = table[table.strategy == "treat all"].net_benefit.to_numpy()
    np.testing.assert_allclose(lines["treat all"].get_ydata(), saved)
    prevalence = float(table.events.iloc[0] / table.n.iloc[0])
    assert ax.get_ylim()[1] == pytest.approx(1.15 * prevalence + 0.005)
    plot.figure.savefig(tmp_path / "decision.png", dpi=100)
    assert (tmp_path / "decision.png").stat().st_size > 10_000


def test_a_run_without_the_file_is_a_note_not_a_guess(tmp_path):
    plot = figures.decision_curves([RunData(path=tmp_path, label="old", kind="evaluate")])
    assert plot.figure is None and "decision_curve.csv" in plot.notes[0]
