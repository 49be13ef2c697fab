"""ECG paper: speed and gain measured in the PNG itself, against the paper's own 5 mm grid."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.report.ecgplot import MAJOR_COLOUR, PaperSettings, PlotError, render_ecg, save_ecg

FS = 500


def pulse_ecg(start_s: float = 1.0, width_s: float = 0.2, mv: float = 1.0) -> ECG:
    """12 flat leads; lead I steps up by ``mv`` for ``width_s`` from ``start_s``."""
    signal = np.zeros((12, 10 * FS), dtype=np.float32)
    signal[0, int(start_s * FS): int((start_s + width_s) * FS)] = mv
    return ECG.from_array(signal, STANDARD_LEADS, FS, record_id="pulse")


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def line_centres(mask_1d: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask_1d)
    return np.array(ndimage.center_of_mass(mask_1d, labels, range(1, n + 1))).ravel()


def grid_period(image: np.ndarray, axis: int) -> float:
    """Pixel period of the 5 mm lines: columns (axis 0) or rows (axis 1) that are major-grid coloured over most
    of the image's extent. A flat trace hides the line it runs on, so a gap of several periods is allowed; every
    gap must be a whole number of periods to within a pixel."""
    major = np.array([int(MAJOR_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    is_major = np.all(np.abs(image - major) <= 12, axis=-1)
    share = is_major.mean(axis=axis)
    centres = line_centres(share > 0.5)
    centres = centres[(centres > 3) & (centres < len(share) - 4)]  # a line on the border is cut in half
    assert len(centres) >= 10
    steps = np.diff(centres)
    period = float(np.median(steps))
    multiples = np.round(steps / period)
    assert np.all(np.abs(steps - multiples * period) <= 1.01), steps  # evenly spaced to a pixel
    return float((centres[-1] - centres[0]) / multiples.sum())


def pulse_box(image: np.ndarray, x0: float, x1: float, base: float, half: float) -> tuple[float, float, float]:
    """(height, width, left edge) in pixels of the square pulse of the black trace inside a crop: the two vertical
    edges are the columns black over most of the pulse; the height runs from the baseline's centre row (just
    left of the rise) to the plateau's centre row (midway between the edges)."""
    y0, y1, c0, c1 = int(base - half), int(base + 0.3 * half), int(x0), int(x1)
    black = np.all(image[y0:y1, c0:c1] < 80, axis=-1)
    per_column = black.sum(axis=0)
    edges = line_centres(per_column > 0.5 * per_column.max())
    assert len(edges) == 2, edges

    def centre_row(column: float) -> float:
        return float(np.flatnonzero(black[:, int(round(column))]).mean())

    baseline, plateau = centre_row(edges[0] - 5), centre_row((edges[0] + edges[1]) / 2)
    return baseline - plateau, float(edges[1] - edges[0]), c0 + float(edges[0])


@pytest.mark.parametrize(("speed", "gain", "px_per_mm"), [(25.0, 10.0, 10.0), (50.0, 20.0, 8.0), (25.0, 5.0, 12.0)])
def test_speed_and_gain_are_exact_in_the_png(tmp_path, speed, gain, px_per_mm):
    settings = PaperSettings(speed_mm_s=speed, gain_mm_mv=gain, px_per_mm=px_per_mm, filtered=False)
    fig, sheet = render_ecg(pulse_ecg(), settings)
    path = save_ecg(fig, tmp_path / "pulse.png")
    image = rgb(path)
    assert image.shape[:2] == (round(sheet.height_mm * px_per_mm), round(sheet.width_mm * px_per_mm))
    period_x, period_y = grid_period(image, 0), grid_period(image, 1)
    assert period_x == pytest.approx(5 * px_per_mm, abs=0.05)  # 5 mm is 5 * px_per_mm pixels
    assert period_y == pytest.approx(5 * px_per_mm, abs=0.05)

    lead, x_start, x_end, base, t0 = sheet.panels[0]
    assert lead == "I" and t0 == 0.0
    height_px = image.shape[0]
    base_px = height_px - base * px_per_mm
    # the crop leaves out the lead label (top left) and the next column's boundary mark
    height, width, left = pulse_box(image, (x_start + 4) * px_per_mm, (x_end - 1) * px_per_mm, base_px,
                                    (gain + 4) * px_per_mm)
    # 1 mV is gain mm: gain / 5 major squares; 200 ms is 0.2 * speed mm; the pulse starts 1.0 s into the panel
    assert height / period_y == pytest.approx(gain / 5, abs=0.03)
    assert width / period_x == pytest.approx(0.2 * speed / 5, abs=0.03)
    assert (left - x_start * px_per_mm) / period_x == pytest.approx(1.0 * speed / 5, abs=0.03)

    # the calibration pulse is 1 mV by 200 ms too
    rise, cal_base = sheet.calibration[0]
    cal_h, cal_w, cal_left = pulse_box(image, (rise - 1.5) * px_per_mm, (rise + 0.2 * speed + 0.9) * px_per_mm,
                                       height_px - cal_base * px_per_mm, (gain + 4) * px_per_mm)
    assert cal_h / period_y == pytest.approx(gain / 5, abs=0.03)
    assert cal_w / period_x == pytest.approx(0.2 * speed / 5, abs=0.03)


def test_the_standard_layout_puts_leads_in_columns_with_a_rhythm_strip():
    fig, sheet = render_ecg(pulse_ecg(), PaperSettings(filtered=False))
    leads = [p[0] for p in sheet.panels]
    assert leads == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "II"]
    starts = sorted({p[4] for p in sheet.panels[:12]})
    assert starts == [0.0, 2.5, 5.0, 7.5]  # each column the next 2.5 s
    lead, x0, x1, _, t0 = sheet.panels[-1]
    assert (x1 - x0) == pytest.approx(250.0) and t0 == 0.0  # rhythm strip: 10 s at 25 mm/s
    assert len(sheet.calibration) == 4
    column = sheet.panels[3]
    assert column[2] - column[1] == pytest.approx(62.5)


def test_eight_lead_and_custom_orders_fill_columns():
    _, sheet = render_ecg(pulse_ecg(), PaperSettings(layout="8", filtered=False, rhythm=()))
    assert [p[0] for p in sheet.panels] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    order = ("aVL", "I", "aVR", "II", "aVF", "III", "V1", "V2", "V3", "V4", "V5", "V6")
    _, sheet = render_ecg(pulse_ecg(), PaperSettings(layout="6x2", lead_order=order, filtered=False))
    assert [p[0] for p in sheet.panels] == list(order)
    assert {round(p[2] - p[1], 6) for p in sheet.panels} == {125.0}


def test_limb_leads_are_derived_when_only_i_ii_and_chest_leads_are_stored():
    names = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    signal = np.zeros((8, 5 * FS), dtype=np.float32)
    signal[0, 250:350], signal[1, 250:350] = 1.0, 0.5  # at 0.5 s; III = II - I = -0.5 mV
    ecg = ECG.from_array(signal, names, FS)
    fig, sheet = render_ecg(ecg, PaperSettings(filtered=False))
    iii = next(line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 100
               and np.isclose(line.get_ydata().min(), sheet.panels[2][3] - 5.0))
    assert iii is not None
    assert sheet.panels[-1][2] - sheet.panels[-1][1] == pytest.approx(125.0)  # a 5 s record fills 5 s
    assert sheet.panels[3][4] == 1.25  # four columns share the 5 s


def test_median_layout_marks_the_measured_fiducials(cardiosoft_xml):
    from aiecg.io import read_ecg
    from aiecg.signal.record import analyse_ecg

    ecg = read_ecg(cardiosoft_xml)
    fig, sheet = render_ecg(ecg, PaperSettings(layout="median", fiducials=True, speed_mm_s=50))
    assert len(sheet.panels) == 12
    fid = analyse_ecg(ecg).fiducials
    ax = fig.axes[0]
    blue = [c for c in ax.collections if np.allclose(c.get_colors()[0][:3], (0, 0x72 / 255, 0xB2 / 255))]
    xs = sorted({round(seg[0][0], 6) for c in blue for seg in c.get_segments()})
    lead, x0, *_ = sheet.panels[0]
    expected = [round(x0 + fid.qrs_on / 500 * 50, 6), round(x0 + fid.qrs_off / 500 * 50, 6)]
    assert expected[0] in xs and expected[1] in xs
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "QRS" in texts and "50 mm/s" in texts and "10 mm/mV" in texts


def test_settings_that_cannot_be_drawn_are_refused():
    with pytest.raises(PlotError, match="layout"):
        PaperSettings(layout="4x4")
    with pytest.raises(PlotError, match="12 leads"):
        PaperSettings(lead_order=("I", "II"))
    with pytest.raises(PlotError, match="speed"):
        PaperSettings(speed_mm_s=0)
    with pytest.raises(PlotError, match="unknown lead name 'V7'"):
        PaperSettings(rhythm=("V7",))


def test_lead_names_are_read_as_vendors_spell_them():
    order = ("avl", "i", "AVR", "ii", "avf", "iii", "v1", "v2", "v3", "v4", "v5", "v6")
    settings = PaperSettings(layout="6x2", lead_order=order, rhythm=("lead_ii",))
    assert settings.leads == ("aVL", "I", "aVR", "II", "aVF", "III", "V1", "V2", "V3", "V4", "V5", "V6")
    assert settings.rhythm == ("II",)
