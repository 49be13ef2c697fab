"""Score distributions by LVH status and the confusion matrix at the operating point."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import PROBABILITY_COLUMNS, Plot, primary_score, register_figure
from aiecg.report.runs import RunData


@register_figure(order=45)
def score_distributions(runs: list[RunData]) -> Plot:
    """The primary LVH score of participants with and without CMR LVH, with the validation-chosen threshold, and
    the 2 x 2 table at that threshold (counts from results.csv; threshold from metrics.json)."""
    plot = Plot("score_distributions", "LVH score by CMR LVH status, and the confusion matrix",
                "Left: the model's LVH score (the one the metrics describe) of each participant, by CMR LVH status "
                "(points jittered; box: quartiles); dashed: the threshold chosen on the validation split. Right: "
                "participants by CMR LVH and by the model's call at that threshold.")
    usable = [(run, score) for run in runs if (score := primary_score(run))]
    if not usable:
        plot.notes.append("no run has LVH labels and an LVH score in results.csv")
        return plot
    fig = style.new_figure(7.6, 3.2 * len(usable))
    rng = np.random.default_rng(0)
    for sub, (run, (column, labels, scores)) in zip(fig.subfigures(len(usable), 1, squeeze=False).ravel(), usable):
        ax, matrix_ax = sub.subplots(1, 2, width_ratios=[1.6, 1])
        groups = [scores[labels == 0], scores[labels == 1]]
        ax.boxplot(groups, positions=[0, 1], widths=0.5, showfliers=False, medianprops={"color": style.BLACK})
        for k, (values, colour, marker) in enumerate(zip(groups, (style.GREY, style.VERMILLION), ("o", "^"))):
            ax.scatter(k + rng.uniform(-0.15, 0.15, len(values)), values, s=12, color=colour, marker=marker,
                       alpha=0.7, linewidths=0, zorder=3)
        ax.set_xticks([0, 1], [f"no LVH (n={len(groups[0])})", f"LVH (n={len(groups[1])})"])
        ax.set_ylabel(f"LVH score: {PROBABILITY_COLUMNS.get(column, column)}")
        threshold = run.metrics.get("test", {}).get("lvh_at_validation_youden", {}).get("threshold")
        ax.set_title(f"{run.label}, {run.cohort_name}", fontsize=9)
        if threshold is None or not np.isfinite(threshold):
            matrix_ax.axis("off")
            matrix_ax.text(0.5, 0.5, "no validation-chosen threshold saved", ha="center", fontsize=8)
            continue
        ax.axhline(threshold, color=style.BLACK, linestyle="--", linewidth=0.8)
        ax.annotate(f"threshold {threshold:.3g}", xy=(1.0, threshold), xycoords=("axes fraction", "data"),
                    xytext=(2, 0), textcoords="offset points", va="center", fontsize=7)
        called = scores >= threshold
        counts = np.array([[np.sum(~called & (labels == 0)), np.sum(called & (labels == 0))],
                           [np.sum(~called & (labels == 1)), np.sum(called & (labels == 1))]])
        matrix_ax.imshow(counts, cmap="Blues", vmin=0)
        names = [["true negative", "false positive"], ["false negative", "true positive"]]
        for (r, c), value in np.ndenumerate(counts):
            matrix_ax.text(c, r, f"{value}\n{names[r][c]}", ha="center", va="center", fontsize=8,
                           color="white" if value > 0.6 * counts.max() else style.BLACK)
        matrix_ax.set_xticks([0, 1], ["called no LVH", "called LVH"])
        matrix_ax.set_yticks([0, 1], ["CMR: no LVH", "CMR: LVH"])
        sens, spec = counts[1, 1] / max(counts[1].sum(), 1), counts[0, 0] / max(counts[0].sum(), 1)
        matrix_ax.set_title(f"sensitivity {sens:.2f}, specificity {spec:.2f}", fontsize=8)
    plot.figure = fig
    return plot
