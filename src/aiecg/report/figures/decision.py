"""Decision curves (net benefit across threshold probabilities)."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import (
    Plot,
    label_panel,
    legend_panels,
    register_figure,
)
from aiecg.report.runs import RunData


@register_figure(order=80)
def decision_curves(runs: list[RunData]) -> Plot:
    """Net benefit across threshold probabilities (Vickers & Elkin, Med Decis Making 2006), drawn from each run's
    ``decision_curve.csv`` (written by the evaluation)."""
    plot = Plot("decision_curves", "Decision curves",
                "Net benefit (true positives per participant, less false positives weighted by the threshold odds "
                "pt/(1 - pt); Vickers & Elkin 2006) of acting on the model's LVH probability at each threshold "
                "probability, against treating everyone, no one, or those a classic criterion calls positive at "
                "its published cut-off. A criterion treats the same participants at every threshold, so its net "
                "benefit falls as the threshold odds rise. Shaded: pointwise bootstrap 95% band of the model "
                "(participants resampled). The model helps where its curve lies above both treat-all and "
                "treat-none.")
    usable = [run for run in runs if run.decision_curve is not None and len(run.decision_curve)]
    if not usable:
        plot.notes.append("no run saved decision_curve.csv (written by the evaluation of an LVH score with LVH "
                          "labels)")
        return plot
    entries = max(run.decision_curve["strategy"].nunique() for run in usable)
    fig, pairs = legend_panels(len(usable), 4.8, 3.8, int(np.ceil(entries / 2)))
    for (ax, legend_ax), run in zip(pairs, usable):
        table = run.decision_curve
        everyone = table[table["kind"] == "treat all"]
        prevalence = float(everyone["events"].iloc[0] / everyone["n"].iloc[0]) if len(everyone) else 0.1
        upper = float(min(0.99, np.ceil(max(0.3, 3 * prevalence) * 20) / 20))
        criteria = 0
        for name, rows in table.groupby("strategy", sort=False):
            kind, pt, nb = rows["kind"].iloc[0], rows["threshold"].to_numpy(), rows["net_benefit"].to_numpy()
            if kind == "model":
                ax.fill_between(pt, rows["low"], rows["high"], color=style.BLUE, alpha=0.18, linewidth=0)
                ax.plot(pt, nb, color=style.BLUE, linewidth=2.2, label=f"{name} (n={rows['n'].iloc[0]})")
            elif kind == "treat all":
                ax.plot(pt, nb, color=style.GREY, linewidth=1.4, label="treat all")
            elif kind == "treat none":
                ax.plot(pt, nb, color=style.BLACK, linewidth=1, linestyle=":", label="treat none")
            else:
                criteria += 1
                i = criteria % len(style.CYCLE)
                ax.plot(pt, nb, color=style.CYCLE[i], linestyle=style.LINESTYLES[i], linewidth=1,
                        marker=style.MARKERS[i], markevery=10, markersize=4, mfc="white",
                        label=f"{name} (n={rows['n'].iloc[0]})")
        label_panel(ax, legend_ax, (0, upper), (-0.3 * prevalence - 0.005, 1.15 * prevalence + 0.005),
                     "threshold probability of LVH", "net benefit",
                     f"{run.label}\n{run.cohort_name}: LVH prevalence {prevalence:.3f}")
    plot.figure = fig
    return plot
