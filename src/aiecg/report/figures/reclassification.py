"""Reclassification against the classic criteria: the NRI of events and of non-events, side by side."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import Plot, grid, register_figure
from aiecg.report.runs import RunData

PARTS = (("nri_events", "events (LVH): net share moved up", style.VERMILLION, "o"),
         ("nri_non_events", "non-events: net share moved down", style.BLUE, "s"))


@register_figure(order=55)
def reclassification(runs: list[RunData]) -> Plot:
    plot = Plot("reclassification", "Reclassification against the classic criteria (NRI)",
                "Net reclassification improvement of the model's call at its validation-chosen threshold over each "
                "criterion's call at its published cut-off (reclassification.csv; Pencina et al., Stat Med 2008), "
                "for events and non-events separately as Leening et al. (Ann Intern Med 2014) advise: with two "
                "categories, the gain in sensitivity and in specificity. Right of 0: the model classifies that "
                "group better. Bars: percentile bootstrap 95% intervals, stratified by LVH. The counts behind each "
                "value are in the reclassification table.")
    usable = [run for run in runs if run.reclassification is not None and len(run.reclassification)]
    if not usable:
        plot.notes.append("no run saved a reclassification against the criteria (needs LVH labels, the comparison "
                          "and a model threshold)")
        return plot
    fig, axes = grid(len(usable), 5.2, 0.55 * max(len(run.reclassification) for run in usable) + 1.6, cols=2)
    for ax, run in zip(axes, usable):
        table = run.reclassification
        y = np.arange(len(table))[::-1]
        for k, (column, label, colour, marker) in enumerate(PARTS):
            est = table[column].to_numpy(float)
            low, high = table[f"{column}_low"].to_numpy(float), table[f"{column}_high"].to_numpy(float)
            offset = 0.15 if k == 0 else -0.15
            ax.errorbar(est, y + offset, xerr=[est - low, high - est], fmt=marker, color=colour, capsize=2,
                        markersize=5, label=label)
        ax.axvline(0, color=style.GREY, linestyle=":", linewidth=1)
        ax.set_yticks(y, [f"vs {name}" for name in table["criterion"]])
        ax.set_xlim(-1.02, 1.02)
        ax.set_xlabel("NRI (95% CI)")
        ax.set_title(f"{run.label}, {run.cohort_name}\nmodel threshold {table['model_threshold'].iloc[0]:.3g}")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    plot.figure = fig
    return plot
