"""Estimates per subgroup (sex, age and BMI tertiles)."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import (
    Plot,
    grid,
    interval,
    register_figure,
)
from aiecg.report.runs import RunData

SUBGROUP_NAMES = {"is_m": {"0": "female", "1": "male"}}


SUBGROUP_UNITS = {"age": "years", "bmi": "kg/m²"}


def _count(report: dict) -> str:
    """``n=40`` or, with LVH cases saved, ``n=40, 9 LVH``."""
    cases = report.get("positives")
    return f"n={int(report.get('n', 0))}" + (f", {int(cases)} LVH" if cases is not None else "")


GROUPING_NAMES = {"is_m": "sex", "age": "age", "bmi": "BMI"}


def interaction_text(test: dict | None) -> str:
    """``p = 0.43`` for a saved subgroup interaction test (``not tested`` where the run saved none, ``n/a`` where
    it was undefined: the table of interaction tests says why)."""
    if not test:
        return "not tested"
    p = float(test.get("p", np.nan))
    if not np.isfinite(p):
        return "n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _subgroup_rows(block: dict, metric: str) -> list[tuple[str, float, float, float, str, bool]]:
    """(label, estimate, low, high, counts, is_header) per row: all participants, then per grouping a header row
    with its interaction test and a row per level."""
    rows = [("all", *interval(block.get("overall", {}).get(metric)), _count(block.get("overall", {})), False)]
    cuts = block.get("cut_points", {})
    tests = block.get("interaction", {})
    for column, levels in block.get("subgroups", {}).items():
        what = "AUROC" if metric == "auroc" else "|error|"
        rows.append((f"{GROUPING_NAMES.get(column, column)}: {what} differs? {interaction_text(tests.get(column))}",
                     np.nan, np.nan, np.nan, "", True))
        for level, report in levels.items():
            name = SUBGROUP_NAMES.get(column, {}).get(level)
            if name is None:
                c1, c2 = cuts.get(column, [np.nan, np.nan])
                span = {"T1": f"≤ {c1:.3g}", "T2": f"{c1:.3g}-{c2:.3g}", "T3": f"> {c2:.3g}"}.get(level, "")
                unit = SUBGROUP_UNITS.get(column)
                name = f"{column.upper() if column == 'bmi' else column} {level} ({span}{' ' + unit if unit else ''})"
            rows.append((name, *interval(report.get(metric)), _count(report), False))
    return rows


@register_figure(order=60)
def subgroups(runs: list[RunData]) -> Plot:
    plot = Plot("subgroups", "Subgroups by sex, age and BMI tertile",
                "Estimates with 95% intervals per subgroup (metrics.json 'subgroups'); tertile cut-points of the "
                "evaluated cohort in brackets; n (and LVH cases) per subgroup on the right. Above each grouping: "
                "the test of whether the model performs differently between its levels (an interaction test; "
                "AUROC: Wald chi-squared test with DeLong variances, Hanley & McNeil 1982 for two levels; MAE: "
                "Kruskal-Wallis test of the absolute errors). The axis spans the intervals, not 0 to 1: its start "
                "is in the axis label.")
    panels = []
    for run in runs:
        for key, block in run.metrics.get("subgroups", {}).items():
            metric, label = ("auroc", "AUROC (LVH)") if key == "lvh" else ("mae", f"MAE {style.NAMES.get(key, key)} "
                                                                                   f"({style.UNITS.get(key, '')})")
            panels.append((run, label, _subgroup_rows(block, metric)))
    if not panels:
        plot.notes.append("no run saved subgroup metrics")
        return plot
    fig, axes = grid(len(panels), 4.4, 0.3 * max(len(p[2]) for p in panels) + 1.3, cols=2)
    for ax, (run, label, rows) in zip(axes, panels):
        y = np.arange(len(rows))[::-1]
        for yi, (_, est, low, high, n, header) in zip(y, rows):
            if header:
                continue
            if np.isfinite(est):
                ax.errorbar(est, yi, xerr=[[est - low], [high - est]] if np.isfinite(low) else None, fmt="o",
                            color=style.BLUE if yi == y[0] else style.BLACK, capsize=2, markersize=4)
            else:  # e.g. AUROC of a subgroup with one class only: say so rather than leave a silent gap
                ax.annotate("not estimable", xy=(0.02, yi), xycoords=("axes fraction", "data"), va="center",
                            fontsize=7, color=style.GREY)
            ax.annotate(n, xy=(1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7)
        ax.set_yticks(y, [r[0] for r in rows])
        for tick, row in zip(ax.get_yticklabels(), rows):
            if row[5]:
                tick.set_fontweight("bold")
                tick.set_fontsize(7)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        overall = rows[0][1]
        if np.isfinite(overall):
            ax.axvline(overall, color=style.GREY, linestyle=":", linewidth=1)
        low_edge = ax.get_xlim()[0]
        ax.set_xlabel(label + (f" (axis starts at {low_edge:.2f})" if low_edge > 0 else ""))
        ax.set_title(f"{run.label}, {run.cohort_name}")
    plot.figure = fig
    return plot
