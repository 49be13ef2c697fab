"""What every report figure shares: the :class:`Plot` it returns, the registry that lists it in the page, and the
panel helpers.

A figure is one function in one module of this package, decorated with :func:`register_figure`; the page
(:mod:`aiecg.report.html`) draws every registered figure in ``order``. It takes the run folders loaded by
:mod:`aiecg.report.runs` and draws from their saved files only: a panel that needs data a run did not save is
skipped with a note saying what is missing, never drawn from a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from aiecg.report import style
from aiecg.report.runs import RunData

RASTER_ABOVE = 5000  # points: larger scatter layers go into SVG files as one embedded image, not 10^4 paths


LEAD_ORDER = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


PROBABILITY_COLUMNS = {
    "lvh_proba": "model probability", "lvh_proba_prioradj": "model, prior-shift adjusted",
    "lvh_proba_lr": "LR (sex + prediction)", "lvh_proba_prioradj_lr": "LR, prior-shift adjusted",
}


@dataclass
class Plot:
    """One figure of the report (``figure`` None: skipped, ``notes`` say why)."""

    name: str
    title: str
    caption: str
    figure: Figure | None = None
    notes: list[str] = field(default_factory=list)


FigureFunction = Callable[[list[RunData]], "Plot | list[Plot]"]
_REGISTRY: list[tuple[float, str, FigureFunction]] = []


def register_figure(order: float) -> Callable[[FigureFunction], FigureFunction]:
    """Register a figure of the results section: ``fn(runs) -> Plot | list[Plot]``, drawn at ``order`` (the
    built-in figures use 10, 20, ..., 120; a figure registered twice under one name replaces the first)."""

    def add(fn: FigureFunction) -> FigureFunction:
        name = f"{fn.__module__}.{fn.__qualname__}"
        _REGISTRY[:] = [entry for entry in _REGISTRY if entry[1] != name]
        _REGISTRY.append((order, name, fn))
        return fn

    return add


def unregister_figure(fn: FigureFunction) -> None:
    """Remove ``fn`` from the page (a test's figure, a figure a user does not want)."""
    _REGISTRY[:] = [entry for entry in _REGISTRY if entry[2] is not fn]


def registered_figures() -> list[FigureFunction]:
    """The figures of the results section, in page order."""
    return [fn for _, _, fn in sorted(_REGISTRY, key=lambda entry: (entry[0], entry[1]))]


def draw_figures(runs: list[RunData]) -> list[Plot]:
    """Every registered figure of ``runs``, flattened into one list of plots in page order."""
    plots: list[Plot] = []
    for fn in registered_figures():
        made = fn(runs)
        plots.extend(made if isinstance(made, list) else [made])
    return plots


def regression_stem(run: RunData) -> str | None:
    spec = run.spec
    if spec is None or not spec.is_regression or run.results is None:
        return None
    stem = spec.stem
    return stem if stem and f"{stem}_pred" in run.results else None


def grid(n: int, width: float = 3.6, height: float = 3.4, cols: int = 3) -> tuple[Figure, list]:
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    fig = style.new_figure(width * cols, height * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def legend_panels(n: int, width: float, height: float, legend_rows: int, cols: int = 2) -> tuple[Figure, list]:
    """Panels each with its own legend area below, sized for ``legend_rows`` lines, so a long legend never runs
    into the panel beneath it; returns (figure, [(axes, legend axes)])."""
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    legend_height = 0.16 * legend_rows + 0.3
    fig = style.new_figure(width * cols, rows * (height + legend_height))
    pairs = []
    for sub in fig.subfigures(rows, cols, squeeze=False).ravel()[:n]:
        ax, legend_ax = sub.subplots(2, 1, height_ratios=[height, legend_height])
        legend_ax.axis("off")
        pairs.append((ax, legend_ax))
    return fig, pairs


def legend_below(ax, legend_ax, ncol: int = 1, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    legend_ax.legend(handles, labels, loc="upper center", fontsize=7, frameon=False, ncol=ncol, title=title,
                     title_fontsize=7)


def label_panel(ax, legend_ax, xlim: tuple[float, float], ylim: tuple[float, float], xlabel: str, ylabel: str,
                 title: str) -> None:
    """Limits, axis labels and title of a panel, and its legend in the area below it (two columns)."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_below(ax, legend_ax, ncol=2)


def interval(d: dict | None) -> tuple[float, float, float]:
    d = d or {}
    return float(d.get("estimate", np.nan)), float(d.get("low", np.nan)), float(d.get("high", np.nan))


def primary_score(run: RunData) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(column, labels, scores) of the run's primary LVH score, as its metrics name it."""
    table = run.results
    if table is None or "lvh_true" not in table:
        return None
    column = run.metrics.get("test", {}).get("lvh_score")
    if column is None or column not in table:
        column = next((c for c in ("lvh_proba", "lvh_proba_lr") if c in table), None)
    if column is None:
        return None
    labels, scores = table["lvh_true"].to_numpy(float), table[column].to_numpy(float)
    keep = np.isfinite(labels) & np.isfinite(scores)
    if len(np.unique(labels[keep])) < 2:
        return None
    return column, labels[keep], scores[keep]
