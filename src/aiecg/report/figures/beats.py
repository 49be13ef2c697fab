"""Median beats on ECG paper: the standard 3 x 4 arrangement, by LVH and by prediction."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from aiecg.report import style
from aiecg.report.figures.base import (
    Plot,
    register_figure,
)
from aiecg.report.runs import RunData


def beat_grid(time_ms: np.ndarray, leads: list[str], curves: list[tuple[str, np.ndarray, dict]], title: str,
              colour_by: np.ndarray | None = None, colour_label: str = "", colour_limit: float | None = None) -> Figure:
    """Median beats of 12 (or fewer) leads in the standard 3 x 4 arrangement (I, II, III down the first column,
    then aVR-aVF, V1-V3, V4-V6), one line per curve ([leads, samples] in mV), on the 1 mm / 5 mm ECG grid at the
    proportions of 25 mm/s and 10 mm/mV (:func:`aiecg.report.ecgplot.paper_grid`); with ``colour_by``
    ([leads, samples]) the first curve is drawn as points coloured by it (attributions)."""
    from aiecg.report.ecgplot import paper_grid

    cols = 4 if len(leads) > 6 else 3
    rows = int(np.ceil(len(leads) / cols))
    low = np.floor(min(float(np.nanmin(beat)) for _, beat, _ in curves) * 2 - 0.2) / 2  # whole 0.5 mV squares
    high = np.ceil(max(float(np.nanmax(beat)) for _, beat, _ in curves) * 2 + 0.2) / 2
    panel_height = 1.9  # inches; the width follows from 25 mm/s against 10 mm/mV
    panel_width = panel_height * (float(time_ms[-1] - time_ms[0]) / 40.0) / ((high - low) * 10.0)
    extra = 1.2 if colour_by is not None else 0.6
    fig = style.new_figure(max(4.5, cols * (panel_width + 0.55) + extra), (panel_height + 0.35) * rows + 0.9)
    grid = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    axes = grid.T.ravel()  # filled column by column, as ECG paper is
    mappable = None
    if colour_by is not None:
        limit = colour_limit or float(np.nanmax(np.abs(colour_by))) or 1.0  # one scale across figures compared
    for k, (ax, lead) in enumerate(zip(axes, leads)):
        for i, (name, beat, kw) in enumerate(curves):
            if colour_by is not None and i == 0:
                # colour: sign and size; size: magnitude (so the map survives greyscale printing)
                mappable = ax.scatter(time_ms, beat[k], c=colour_by[k], cmap="RdBu_r", vmin=-limit, vmax=limit,
                                      s=1 + 30 * np.minimum(np.abs(colour_by[k]) / limit, 1.0), linewidths=0, zorder=1)
                ax.plot(time_ms, beat[k], color=style.BLACK, linewidth=0.5, zorder=2)
            else:
                kw = dict(kw)
                band = kw.pop("band", None)
                if band is not None:
                    ax.fill_between(time_ms, beat[k] - band[k], beat[k] + band[k], color=kw.get("color", style.GREY),
                                    alpha=0.15, linewidth=0)
                ax.plot(time_ms, beat[k], label=name if k == 0 else None, **kw)
        ax.axvline(0, color=style.GREY, linewidth=0.4, linestyle=":")
        ax.set_title(lead, fontsize=9, loc="left")
    for ax in axes[len(leads):]:
        ax.set_visible(False)
    axes[0].set_xlim(float(time_ms[0]), float(time_ms[-1]))
    axes[0].set_ylim(low, high)
    for ax in axes[: len(leads)]:
        paper_grid(ax)
    fig.supxlabel("time from R peak (ms); grid: 1 mm = 40 ms x 0.1 mV (25 mm/s, 10 mm/mV)", fontsize=9)
    fig.supylabel("amplitude (mV)", fontsize=9)
    if colour_by is None and len(curves) > 1:  # the legend carries the title, so the two cannot overlap
        fig.legend(loc="outside upper center", ncol=len(curves), frameon=False, title=title, title_fontsize=10)
    else:
        fig.suptitle(title, fontsize=10)
    if mappable is not None:
        fig.colorbar(mappable, ax=axes[: len(leads)].tolist(), shrink=0.6, label=colour_label)
    return fig


@register_figure(order=120)
def median_beats(runs: list[RunData]) -> list[Plot]:
    """Average 12-lead median beat (with a band of one SD between participants) of CMR LVH vs no LVH, and of the
    lowest vs highest fifth of predictions, from the summaries ``workflows/report.py`` made of the store."""
    plots = []
    for run in runs:
        summary = run.median_beats
        if summary is None:
            continue
        slug = "".join(c if c.isalnum() else "_" for c in run.label)
        if summary.get("note"):
            plots.append(Plot(f"median_beats_{slug}", f"Median beats, {run.label}", "", notes=[summary["note"]]))
            continue
        time_ms, leads = summary["time_ms"], summary["leads"]
        for panel in summary["panels"]:
            styles = [{"color": style.VERMILLION, "linewidth": 1.4}, {"color": style.BLACK, "linestyle": "--",
                                                                      "linewidth": 1}]
            curves = [(c["label"], c["mean"], {**kw, "band": c["sd"]}) for c, kw in zip(panel["curves"], styles)]
            if panel["name"] == "lvh":
                plots.append(Plot(f"median_beats_lvh_{slug}", f"Median beats by CMR LVH, {run.label}",
                                  "Mean of the participants' median beats (evaluated participants) with and without "
                                  "LVH by CMR; shaded: ± 1 SD between participants.",
                                  beat_grid(time_ms, leads, curves, f"{run.label}: LVH vs no LVH by CMR")))
            else:
                plots.append(Plot(f"median_beats_predicted_{slug}", f"Median beats by prediction, {run.label}",
                                  f"Mean median beat of the lowest and highest fifth of {panel.get('what')}; "
                                  "shaded: ± 1 SD between participants.",
                                  beat_grid(time_ms, leads, curves, f"{run.label}: lowest vs highest predicted")))
    return plots
