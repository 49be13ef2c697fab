"""The flow of participants as a diagram (in the style of STARD 2015 / CONSORT): cohort table, exclusions with
their reasons, usable participants, and the splits; drawn from the same table as the 'flow of participants'
(exclusions.csv, splits.json)."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import Plot, register_figure
from aiecg.report.runs import RunData
from aiecg.report.tables import participant_flow

BOX = {"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": style.BLACK, "linewidth": 0.8}
SIDE = {**BOX, "facecolor": "#f4f4f4", "edgecolor": style.GREY}


def _steps(table) -> tuple[list[tuple[str, int, list[str]]], list[tuple[str, int, str]]]:
    """(main boxes with their exclusion side notes, split boxes with their note) from a participant-flow table."""
    main, splits, current = [], [], None
    for step, count, reason in table[["step", "participants", "reason"]].itertuples(index=False):
        count = int(count) if np.isfinite(count) else -1
        if step and step.endswith(" split"):
            splits.append((step, count, reason))
        elif step:
            current = (step, count, [])
            main.append(current)
        elif current is not None:
            current[2].append(f"{count} {reason}")
    return main, splits


@register_figure(order=5)
def participant_flow_diagram(runs: list[RunData]) -> list[Plot]:
    """One flow diagram per run that saved its exclusions or splits."""
    plots = []
    for run in runs:
        table = participant_flow(run)
        if table is None:
            continue
        main, splits = _steps(table)
        levels, y = [], 0.0  # (y, step, count, reasons, is exclusion)
        for step, count, reasons in main:
            excluded = step.startswith("excluded")
            levels.append((y, step, count, reasons, excluded))
            y -= 1.1 if excluded and len(reasons) > 1 else 0.9
        bottom = y - (0.2 if splits else 0)
        fig = style.new_figure(7.2, 0.75 * (len(levels) + (1 if splits else 0)) + 0.9)
        ax = fig.add_subplot()
        ax.axis("off")
        centre = 2.6
        for y, step, count, reasons, excluded in levels:
            text = f"{step}\nn = {count}" if count >= 0 else step
            if excluded:  # to the right of the main line, which passes on downwards
                ax.annotate(text + ("\n" + "\n".join(reasons[:4]) if reasons else ""), xy=(centre, y),
                            xytext=(5.4, y), ha="left", va="center", fontsize=7, bbox=SIDE,
                            arrowprops={"arrowstyle": "<-", "color": style.GREY, "linewidth": 0.8,
                                        "shrinkA": 2, "shrinkB": 0})
            else:
                ax.text(centre, y, text, ha="center", va="center", fontsize=8, bbox=BOX, zorder=3)
        main_y = [y for y, *_, excluded in levels if not excluded]
        for upper, lower in zip(main_y, main_y[1:]):
            ax.annotate("", xy=(centre, lower + 0.25), xytext=(centre, upper - 0.25),
                        arrowprops={"arrowstyle": "->", "color": style.BLACK, "linewidth": 0.8})
        if splits:
            for i, (step, count, note) in enumerate(splits):
                x = centre + 2.2 * (i - (len(splits) - 1) / 2)
                ax.text(x, bottom, f"{step}\nn = {count}" + (f"\n{note}" if note else ""), ha="center", va="center",
                        fontsize=8, bbox=BOX)
                ax.annotate("", xy=(x, bottom + 0.25), xytext=(centre, main_y[-1] - 0.25),
                            arrowprops={"arrowstyle": "->", "color": style.BLACK, "linewidth": 0.8})
        ax.set_xlim(-0.2, 10)
        ax.set_ylim(bottom - 0.5, 0.5)
        ax.set_title(f"{run.label}, {run.cohort_name}", fontsize=9)
        slug = "".join(c if c.isalnum() else "_" for c in run.label)
        plots.append(Plot(f"flow_{slug}", f"Flow of participants, {run.label}",
                          "From the cohort table to the analysed splits, with the number excluded at each step and "
                          "the commonest reasons (exclusions.csv; splits.json, or an evaluation's metrics.json "
                          "split_sizes; all reasons in the flow table).",
                          fig))
    return plots
