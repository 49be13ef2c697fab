"""``aiecg plot`` end to end on a real CardioSoft XML: the standard layout at 25 mm/s and 10 mm/mV, measured in the
PNG, without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aiecg.cli import main
from aiecg.report.ecgplot import MAJOR_COLOUR

ROOT = Path(__file__).resolve().parents[2]
XML = ROOT.parent / "shared" / "data" / "formats" / "ukb_cardiosoft" / "example-XML1.xml"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def xml() -> Path:
    if not XML.is_file():
        pytest.skip(f"{XML} not found (the shared data sit beside the project)")
    return XML


def _longest_runs(black: np.ndarray) -> np.ndarray:
    """Per column, the longest vertical run of black pixels."""
    best = np.zeros(black.shape[1], dtype=int)
    run = np.zeros(black.shape[1], dtype=int)
    for row in black:
        run = np.where(row, run + 1, 0)
        best = np.maximum(best, run)
    return best


def test_plot_draws_the_standard_layout_at_25_mm_s_and_10_mm_mv_without_torch(xml, tmp_path):
    out = tmp_path / "ecg.png"
    probe = ("import sys, json, aiecg.cli\n"
             f"code = aiecg.cli.main(['-q', 'plot', {str(xml)!r}, '--out', {str(out)!r}])\n"
             "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == {"code": 0, "torch": False}
    assert '"layout": "3x4"' in result.stdout and '"speed_mm_s": 25.0' in result.stdout

    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    height, width = image.shape[:2]
    assert (width, height) == (2700, 1850)  # 270 x 185 mm at 10 px/mm: an A4-landscape-sized sheet
    major = np.array([int(MAJOR_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    is_major = np.all(np.abs(image - major) <= 12, axis=-1)
    columns = np.flatnonzero(is_major.mean(axis=0) > 0.5)
    starts = columns[np.r_[True, np.diff(columns) > 1]][1:-1]  # the lines on the border are cut in half
    assert len(starts) == 53 and np.all(np.diff(starts) == 50)  # a 5 mm line every 50 px across the sheet

    # the four calibration pulses in the left margin: rising and falling edges 1 mV (2 large squares) tall and
    # 200 ms (1 large square at 25 mm/s) apart
    black = np.all(image[:, :150] < 80, axis=-1)
    runs = _longest_runs(black)
    edges = np.flatnonzero(runs > 80)
    groups = np.split(edges, np.flatnonzero(np.diff(edges) > 1) + 1)
    assert len(groups) == 2
    assert (groups[1].mean() - groups[0].mean()) / 50 == pytest.approx(1.0, abs=0.03)
    assert (runs.max() - 2) / 50 == pytest.approx(2.0, abs=0.04)  # 100 px plus the line's width
    tall_rows = np.flatnonzero(black[:, int(groups[0].mean())])
    pulses = [run for run in np.split(tall_rows, np.flatnonzero(np.diff(tall_rows) > 1) + 1) if len(run) > 80]
    assert len(pulses) == 4  # three rows of leads and the rhythm strip
    assert np.all(np.diff([p.mean() for p in pulses]) == pytest.approx(400, abs=1))  # rows 40 mm apart

    # traces in every panel: black ink right of the margin in each of the four rows
    ink = np.all(image[:, 150:] < 80, axis=-1)
    for pulse in pulses:
        base = int(pulse.max())
        band = ink[base - 150: base + 150]
        assert band.any(axis=0).mean() > 0.9  # a continuous trace across the 250 mm


def test_plot_writes_a_folder_of_layouts_and_refuses_what_it_cannot_draw(xml, tmp_path, capsys):
    assert main(["-q", "plot", str(xml), str(xml), "--out", str(tmp_path / "many"), "--layout", "median",
                 "--speed", "50", "--fiducials"]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["example-XML1_1.png", "example-XML1_2.png"]
    capsys.readouterr()
    assert main(["-q", "plot", str(xml), str(xml), "--out", str(tmp_path / "one.png")]) == 2
    assert "names one image but 2 files" in capsys.readouterr().err
    junk = tmp_path / "junk.xml"
    junk.write_text("<not-an-ecg/>")
    assert main(["-q", "plot", str(junk), "--out", str(tmp_path / "junk.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "junk.xml" in err and not (tmp_path / "junk.png").exists()
    assert main(["-q", "plot", str(xml), "--out", str(tmp_path / "x.png"), "--leads", "I,II"]) == 2
    assert "holds 12 leads" in capsys.readouterr().err
