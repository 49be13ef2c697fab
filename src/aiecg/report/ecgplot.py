"""ECGs drawn the way cardiologists read them: standard paper at an exact speed and gain.

The figure *is* the paper: one axes spans the whole figure, its data units are millimetres of paper, and the
figure measures ``width_mm x height_mm`` at ``25.4 * px_per_mm`` dots per inch, so 1 mm of paper is exactly
``px_per_mm`` pixels in the PNG (and exactly 1 mm in a PDF or SVG printed at 100 %). A trace is placed at
``x = x0 + t * speed`` and ``y = baseline + v * gain``; a 1 mm / 5 mm grid, a calibration pulse (1 mV for
200 ms) at the start of every row and the settings in the footer make the scale checkable by eye.

Layouts (the conventions of the AHA/ACCF/HRS recommendations for the standardisation of the ECG, Kligfield P et
al. Circulation 2007;115:1306-1324, and of the printing 12-lead electrocardiographs): ``3x4`` (I, II, III | aVR,
aVL, aVF | V1-V3 | V4-V6, each column the next 2.5 s of a 10 s recording) with rhythm strip(s), ``6x2``,
``12x1``, ``8`` (the eight independent leads I, II, V1-V6 as 4 x 2) and ``median`` (the 12 median beats in the
3x4 arrangement). A lead order fills a layout column by column.

Optionally the global fiducials that ``aiecg measure`` reports (:func:`aiecg.signal.record.analyse_ecg`: P
onset/offset, QRS onset/offset, T end; IEC 60601-2-25 global boundaries) are marked on every beat, and the
global measurements are printed in the header.

Matplotlib only (``Figure``, never pyplot state); no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from aiecg.ecg import ECG, MODEL_LEADS, STANDARD_LEADS, normalise_lead_name
from aiecg.errors import ECGValidationError
from aiecg.report import style

MM_TO_PT = 72.0 / 25.4
LAYOUTS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "3x4": (3, 4, STANDARD_LEADS),
    "6x2": (6, 2, STANDARD_LEADS),
    "12x1": (12, 1, STANDARD_LEADS),
    "8": (4, 2, MODEL_LEADS),
    "median": (3, 4, STANDARD_LEADS),
}
"""Layout name -> (rows, columns, default lead order filled column by column)."""
ROW_MM = {"3x4": 40, "6x2": 30, "12x1": 20, "8": 35, "median": 40}
MINOR_COLOUR, MAJOR_COLOUR = "#f6c9c4", "#e07a6e"
FIDUCIAL_STYLE = {  # (colour, dash): distinguishable in colour and in greyscale
    "P": (style.GREEN, (0, (2, 1))),
    "QRS": (style.BLUE, "-"),
    "T end": (style.VERMILLION, (0, (4, 1, 1, 1))),
}
FIDUCIAL_COLUMNS = {"P": ("p_on_s", "p_off_s"), "QRS": ("qrs_on_s", "qrs_off_s"), "T end": ("t_off_s",)}
FIDUCIAL_KEYS = {"P": ("p_on", "p_off"), "QRS": ("qrs_on", "qrs_off"), "T end": ("t_off",)}


class PlotError(ValueError):
    """Settings that cannot be drawn (an unknown layout, a lead order of the wrong length, a bad scale)."""


@dataclass(frozen=True)
class PaperSettings:
    """How an ECG is put on paper.

    Attributes:
        speed_mm_s: paper speed (25 mm/s standard; 50 mm/s spreads a median beat or a fast rhythm).
        gain_mm_mv: amplitude scale (10 mm/mV standard; 5 for large voltages, 20 for small ones).
        px_per_mm: PNG resolution (10: 254 dpi; 1 mm of paper is exactly this many pixels).
        line_width_mm: trace width.
        layout: one of ``LAYOUTS``.
        lead_order: leads filling the layout column by column (default: the layout's own order).
        rhythm: leads drawn over the whole duration below the grid of leads (``3x4`` and ``8`` only).
        duration_s: seconds shown (at most the recording's length); columns share it.
        row_mm: baseline-to-baseline distance of the rows (default: by layout).
        filtered: draw the signal filtered and resampled as ``aiecg measure`` sees it (0.5-100 Hz, mains
            notch) rather than as stored.
        fiducials: mark the global P, QRS and T-end boundaries of every beat and print the measurements.
        grid: draw the 1 mm / 5 mm grid.
    """

    speed_mm_s: float = 25.0
    gain_mm_mv: float = 10.0
    px_per_mm: float = 10.0
    line_width_mm: float = 0.25
    layout: str = "3x4"
    lead_order: tuple[str, ...] | None = None
    rhythm: tuple[str, ...] = ("II",)
    duration_s: float = 10.0
    row_mm: float | None = None
    filtered: bool = True
    fiducials: bool = False
    grid: bool = True

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise PlotError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUTS)}")
        for name in ("speed_mm_s", "gain_mm_mv", "px_per_mm", "line_width_mm", "duration_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise PlotError(f"{name} must be a positive number, got {value}")
        try:  # vendor spellings ('avl', 'V5 ') become aiecg's lead names; an unknown name is refused here
            if self.lead_order is not None:
                object.__setattr__(self, "lead_order", tuple(normalise_lead_name(n) for n in self.lead_order))
            object.__setattr__(self, "rhythm", tuple(normalise_lead_name(n) for n in self.rhythm))
        except ECGValidationError as exc:
            raise PlotError(str(exc)) from None
        rows, cols, default = LAYOUTS[self.layout]
        if self.lead_order is not None and len(self.lead_order) != rows * cols:
            raise PlotError(f"layout {self.layout} holds {rows * cols} leads ({', '.join(default)}); "
                            f"the lead order gives {len(self.lead_order)}")

    @property
    def leads(self) -> tuple[str, ...]:
        return tuple(self.lead_order or LAYOUTS[self.layout][2])

    @property
    def rhythm_leads(self) -> tuple[str, ...]:
        return self.rhythm if self.layout in ("3x4", "8") else ()


@dataclass
class Sheet:
    """Where everything went on the paper (mm from the bottom-left corner), for checks and for callers that
    draw on top: one ``(lead, x_start, x_end, baseline, t_start)`` per trace panel."""

    width_mm: float
    height_mm: float
    px_per_mm: float
    panels: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    calibration: list[tuple[float, float]] = field(default_factory=list)  # (x of the pulse's rise, baseline)


@dataclass(frozen=True)
class Trace:
    """What is drawn: signal [lead, time] in mV at ``fs``, lead names, and optional fiducials."""

    signal: np.ndarray
    leads: tuple[str, ...]
    fs: float
    beats: object = None  # per-beat fiducial table (seconds) for strips
    median_fiducials: dict[str, float] | None = None  # samples of the median, for the median layout
    measurements: dict[str, float] | None = None


def _prepare(ecg: ECG, settings: PaperSettings) -> Trace:
    """The signal to draw (filtered or as stored, 12 leads where derivable) and, when asked, its fiducials."""
    from aiecg.signal.filters import FilterConfig, preprocess
    from aiecg.signal.leads import select_leads

    wanted = tuple(dict.fromkeys(settings.leads + settings.rhythm_leads))
    analysis = None
    if settings.fiducials or settings.layout == "median":
        from aiecg.signal.record import analyse_ecg

        analysis = analyse_ecg(ecg)
    if settings.layout == "median":
        median = analysis.beats.median
        if not np.any(median):
            raise PlotError(f"record {ecg.record_id!r}: no clean beat, so no median beat to draw")
        fid = analysis.fiducials.as_dict() if settings.fiducials else None
        return Trace(select_leads(median, STANDARD_LEADS, wanted), wanted, analysis.fs, None, fid,
                     analysis.measurements if settings.fiducials else None)
    signal = select_leads(ecg.signal, ecg.leads, wanted)
    fs = float(ecg.fs)
    if settings.filtered:
        cfg = FilterConfig()
        signal, fs = preprocess(signal, fs, cfg), float(cfg.target_fs)
    if analysis is None:
        return Trace(signal, wanted, fs)
    return Trace(signal, wanted, fs, analysis.table, None, analysis.measurements)


def _grid_lines(ax, width: float, height: float, step: float, colour: str, width_mm: float) -> None:
    xs = np.arange(0, width + 1e-9, step)
    ys = np.arange(0, height + 1e-9, step)
    segments = [((x, 0), (x, height)) for x in xs] + [((0, y), (width, y)) for y in ys]
    ax.add_collection(LineCollection(segments, colors=colour, linewidths=width_mm * MM_TO_PT, zorder=0,
                                     antialiased=False))


def _calibration(ax, x: float, base: float, settings: PaperSettings, line_pt: float) -> float:
    """The 1 mV, 200 ms calibration pulse starting at ``x``; returns its rising edge's x."""
    rise, width, height = x + 1.0, 0.2 * settings.speed_mm_s, settings.gain_mm_mv
    ax.plot([x, rise, rise, rise + width, rise + width, rise + width + 1.0],
            [base, base, base + height, base + height, base, base], color=style.BLACK, linewidth=line_pt,
            solid_joinstyle="miter", zorder=3)
    return rise


def _mark(ax, times_s: dict[str, list[float]], t0: float, t1: float, x0: float, base: float, settings: PaperSettings,
          half_mm: float) -> None:
    """Vertical ticks at fiducial times inside [t0, t1) of a panel starting at ``x0``."""
    for wave, times in times_s.items():
        colour, dash = FIDUCIAL_STYLE[wave]
        xs = [x0 + (t - t0) * settings.speed_mm_s for t in times if np.isfinite(t) and t0 <= t < t1]
        if xs:
            ax.add_collection(LineCollection([((x, base - half_mm), (x, base + half_mm)) for x in xs], colors=colour,
                                             linestyles=[dash], linewidths=0.5, alpha=0.9, zorder=2))


def _fiducial_times(trace: Trace) -> dict[str, list[float]]:
    if trace.median_fiducials is not None:
        return {wave: [trace.median_fiducials[k] / trace.fs for k in keys] for wave, keys in FIDUCIAL_KEYS.items()}
    if trace.beats is None:
        return {}
    table = trace.beats
    return {wave: [float(v) for c in cols if c in table for v in table[c].to_numpy(float)]
            for wave, cols in FIDUCIAL_COLUMNS.items()}


def _plain(value: object) -> str:
    """53.0 -> '53'; anything else as it is."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _header(ecg: ECG, trace: Trace, settings: PaperSettings) -> list[str]:
    patient = ", ".join(f"{k} {_plain(ecg.patient[k])}" for k in ("sex", "age")
                        if ecg.patient.get(k) not in (None, ""))
    source = Path(ecg.source).name if ecg.source else ""
    lines = [" · ".join(p for p in (ecg.record_id or "ECG", source, patient) if p),
             f"{ecg.n_samples / ecg.fs:.1f} s recorded at {ecg.fs:g} Hz, {len(ecg.leads)} leads stored"]
    m = trace.measurements
    if m:
        def value(key: str, unit: str) -> str:
            v = m.get(key, math.nan)
            return f"{v:.0f} {unit}" if np.isfinite(v) else "n/a"

        lines.append(f"HR {value('heart_rate_bpm', 'bpm')} · PR {value('pr_ms', 'ms')} · QRS "
                     f"{value('qrs_duration_ms', 'ms')} · QT {value('qt_ms', 'ms')} · QTc (Bazett) "
                     f"{value('qtc_bazett_ms', 'ms')} · QRS axis {value('qrs_axis_deg', '°')} (aiecg measure)")
    return lines


def _footer(settings: PaperSettings, trace: Trace) -> list[str]:
    from aiecg import __version__

    parts = [f"{settings.speed_mm_s:g} mm/s", f"{settings.gain_mm_mv:g} mm/mV",
             "grid 1 mm / 5 mm" if settings.grid else "no grid",
             "filtered 0.5-100 Hz, 50 Hz notch" if settings.filtered or settings.layout == "median" else "as stored",
             "median beats" if settings.layout == "median" else f"{trace.fs:g} Hz"]
    lines = ["   ".join(parts) + f"   aiecg {__version__}"]
    if settings.fiducials:
        lines.append("marks: P on/off (green, dotted), QRS on/off (blue), T end (vermillion, dash-dot)")
    return lines


def render_ecg(ecg: ECG, settings: PaperSettings | None = None) -> tuple[Figure, Sheet]:
    """Draw ``ecg`` on paper as ``settings`` say; returns the figure (save it with :func:`save_ecg`) and where
    each panel went.

    Raises:
        PlotError: the settings cannot be drawn for this record (no median beat, ...).
        KeyError: a lead the layout needs is absent and cannot be derived from I and II.
    """
    settings = settings or PaperSettings()
    trace = _prepare(ecg, settings)
    rows, cols, _ = LAYOUTS[settings.layout]
    speed, gain = settings.speed_mm_s, settings.gain_mm_mv
    row_mm = settings.row_mm or ROW_MM[settings.layout] * gain / 10.0
    row_mm = 5.0 * math.ceil(row_mm / 5.0)  # baselines on the 5 mm grid
    n_samples = trace.signal.shape[1]
    if settings.layout == "median":
        column_s = n_samples / trace.fs
    else:
        column_s = min(settings.duration_s, n_samples / trace.fs) / cols
    column_mm = column_s * speed
    header_mm, footer_mm, left_mm = 20.0 if trace.measurements else 15.0, 14.0 if settings.fiducials else 10.0, 5.0
    x0 = 5.0 * math.ceil((left_mm + 0.2 * speed + 4.0) / 5.0)  # traces start after the calibration pulse
    n_rows = rows + len(settings.rhythm_leads)
    width = math.ceil(x0 + cols * column_mm + 5.0)
    height = math.ceil((footer_mm + n_rows * row_mm + header_mm) / 5.0) * 5
    fig = Figure(figsize=(width / 25.4, height / 25.4), dpi=25.4 * settings.px_per_mm)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    sheet = Sheet(width, height, settings.px_per_mm)
    if settings.grid:
        _grid_lines(ax, width, height, 1.0, MINOR_COLOUR, 0.1)
        _grid_lines(ax, width, height, 5.0, MAJOR_COLOUR, 0.25)
    line_pt = settings.line_width_mm * MM_TO_PT
    top = 5.0 * math.floor((height - header_mm - 0.6 * row_mm) / 5.0)
    fiducials = _fiducial_times(trace) if settings.fiducials else {}
    index = {lead: k for k, lead in enumerate(trace.leads)}
    panels = [(settings.leads[c * rows + r], r, c, cols) for c in range(cols) for r in range(rows)]
    panels += [(lead, rows + k, 0, 1) for k, lead in enumerate(settings.rhythm_leads)]
    for r in range(n_rows):
        base = top - r * row_mm
        sheet.calibration.append((_calibration(ax, left_mm, base, settings, line_pt), base))
    for lead, r, c, n_cols in panels:
        base = top - r * row_mm
        span_s = column_s * cols / n_cols
        t0 = 0.0 if settings.layout == "median" else c * span_s
        start = x0 + c * span_s * speed
        i0, i1 = int(round(t0 * trace.fs)), min(n_samples, int(round((t0 + span_s) * trace.fs)))
        y = trace.signal[index[lead], i0:i1]
        x = start + (np.arange(i0, i1) / trace.fs - t0) * speed
        ax.plot(x, base + y * gain, color=style.BLACK, linewidth=line_pt, solid_joinstyle="round", zorder=3)
        if c > 0:  # the column boundary, as printers mark it
            ax.plot([start, start], [base - 2.5, base + 2.5], color=style.BLACK, linewidth=line_pt, zorder=3)
        ax.text(start + 1.5, base + 0.45 * row_mm - 1.0, lead, fontsize=10, fontweight="bold", va="top",
                ha="left", zorder=4, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
        if fiducials:
            _mark(ax, fiducials, t0, t0 + span_s, start, base, settings, 0.3 * row_mm)
        sheet.panels.append((lead, start, start + span_s * speed, base, t0))
    for k, line in enumerate(_header(ecg, trace, settings)):
        ax.text(left_mm, height - 4.0 - 4.5 * k, line, fontsize=10 if k == 0 else 9,
                fontweight="bold" if k == 0 else "normal", va="top", ha="left", zorder=4)
    for k, line in enumerate(reversed(_footer(settings, trace))):
        ax.text(left_mm, 3.0 + 4.0 * k, line, fontsize=8, va="bottom", ha="left", zorder=4)
    return fig, sheet


def save_ecg(fig: Figure, path: str | Path) -> Path:
    """Write the figure at its own resolution (PNG: exactly ``px_per_mm`` pixels per mm; PDF/SVG: true size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, metadata={"Software": None} if path.suffix.lower() == ".png" else None)
    return path



def paper_grid(ax, speed_mm_s: float = 25.0, gain_mm_mv: float = 10.0) -> None:
    """The 1 mm / 5 mm paper grid behind a plot in milliseconds and millivolts (the report's median beats), at
    the paper's proportions: the axes' aspect makes ``speed_mm_s`` and ``gain_mm_mv`` the same length on screen
    (a 1 mm square is 1000 / speed ms wide and 1 / gain mV tall). Call it after setting the limits."""
    ms_per_mm, mv_per_mm = 1000.0 / speed_mm_s, 1.0 / gain_mm_mv
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for step, colour, width in ((1, MINOR_COLOUR, 0.1), (5, MAJOR_COLOUR, 0.25)):
        dx, dy = step * ms_per_mm, step * mv_per_mm
        xs = np.arange(math.ceil(x0 / dx - 1e-9), math.floor(x1 / dx + 1e-9) + 1) * dx
        ys = np.arange(math.ceil(y0 / dy - 1e-9), math.floor(y1 / dy + 1e-9) + 1) * dy
        segments = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        ax.add_collection(LineCollection(segments, colors=colour, linewidths=width * MM_TO_PT * 2, zorder=0))
    ax.set_aspect(ms_per_mm / mv_per_mm, adjustable="box")
