"""The report's median-beat panels: standard lead arrangement on ECG paper proportions."""

import numpy as np
import pytest

from aiecg.report.figures import LEAD_ORDER, beat_grid


def test_median_beats_are_in_columns_on_a_grid_at_25_mm_s_and_10_mm_mv():
    time_ms = (np.arange(400) - 150) * 2.0
    beats = np.zeros((12, 400))
    beats[:, 150] = np.linspace(0.5, 2.2, 12)
    fig = beat_grid(time_ms, list(LEAD_ORDER), [("a", beats, {}), ("b", beats * 0.5, {})], "t")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    by_position = sorted(axes, key=lambda ax: (round(ax.get_position().x0, 3), -round(ax.get_position().y0, 3)))
    assert [ax.get_title(loc="left") for ax in by_position] == list(LEAD_ORDER)  # I, II, III down column one
    ax = axes[0]
    assert ax.get_aspect() == pytest.approx(400.0)  # 1 ms is 0.025 mm and 1 mV is 10 mm
    assert ax.get_ylim() == (-0.5, 2.5)  # whole 5 mm squares around the data
    lines = ax.collections[-1].get_segments()  # the 5 mm lines: every 200 ms and 0.5 mV
    xs = sorted({round(s[0][0], 6) for s in lines if s[0][0] == s[1][0]})
    ys = sorted({round(s[0][1], 6) for s in lines if s[0][1] == s[1][1]})
    assert np.allclose(np.diff(xs), 200.0) and np.allclose(np.diff(ys), 0.5)
