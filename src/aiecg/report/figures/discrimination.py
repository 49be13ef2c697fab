"""Discrimination of LVH: ROC and precision-recall curves, AUROC across models, criteria and cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiecg.report import style
from aiecg.report.figures.base import (
    PROBABILITY_COLUMNS,
    Plot,
    interval,
    label_panel,
    legend_below,
    legend_panels,
    primary_score,
    register_figure,
)
from aiecg.report.runs import RunData


def criteria_scores(run: RunData) -> dict[str, np.ndarray]:
    """Each classic criterion's score minus its sex-specific cut-off for the run's results rows, as the evaluation
    saved them (comparison_scores.csv); none for a run written before that file existed."""
    if run.results is None:
        return {}
    saved, comparison = run.comparison_scores, run.comparison
    if saved is not None and comparison is not None and len(saved) == len(run.results):
        names = comparison.loc[comparison["kind"] == "criterion", "name"]
        return {name: saved[f"score: {name}"].to_numpy(float) for name in names if f"score: {name}" in saved}
    return {}


BASELINE_COLOURS = ("#000000", "#5B3A29", "#4B0082", "#2F4F4F")
"""Black, dark brown, indigo, dark slate: the ML baselines stay apart from each other and from the criteria."""


def line_style(kind: str, i: int) -> tuple[str, object]:
    """(colour, line style) of the ``i``-th comparison row of a kind in the ROC and PR figures: criteria in the
    palette after the model's blue, baselines in dark colours, so that no row is drawn like the model."""
    if kind == "baseline":
        return BASELINE_COLOURS[i % len(BASELINE_COLOURS)], style.LINESTYLES[(i + 2) % len(style.LINESTYLES)]
    k = i % (len(style.CYCLE) - 1) + 1  # never CYCLE[0], the model's blue
    return style.CYCLE[k], style.LINESTYLES[k % len(style.LINESTYLES)]


def saved_curves(run: RunData, kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The saved ROC curves (roc_curves.csv) of one kind of row (model, baseline, criterion): name -> (fpr,
    tpr)."""
    if run.roc_curves is None:
        return {}
    rows = run.roc_curves[run.roc_curves["kind"] == kind]
    return {str(name): (part["fpr"].to_numpy(float), part["tpr"].to_numpy(float))
            for name, part in rows.groupby("curve", sort=False)}


def _operating_points(run: RunData) -> list[tuple[str, float, float, str]]:
    """(label, sensitivity, specificity, marker) of the model's saved operating points."""
    test = run.metrics.get("test", {})
    points = []
    for key, label, marker in (("lvh_at_validation_youden", "validation-chosen threshold", "o"),
                               ("lvh_at_0.5", "LR probability 0.5", "s"),
                               ("lvh_cutoff", "sex-specific mass cut-off", "D")):
        report = test.get(key)
        if report and "sensitivity" in report:
            if key == "lvh_at_0.5" and test.get("lvh_score") == "lvh_proba":
                label = "probability 0.5"
            if key == "lvh_at_validation_youden":
                label += f" {report.get('threshold', np.nan):.3g}"
            points.append((label, report["sensitivity"]["estimate"], report["specificity"]["estimate"], marker))
    return points


@register_figure(order=30)
def roc_curves(runs: list[RunData]) -> Plot:
    plot = Plot("roc", "ROC curves",
                "Model (thick line; shaded: pointwise bootstrap 95% band) and the classic criteria (thin lines, from "
                "the store's median-beat measurements; open markers: their published cut-offs) on the test "
                "participants. Filled markers: the model's operating points; black markers with 95% intervals: ML "
                "baselines at their validation-chosen thresholds (comparison.csv), with their curves (thin black "
                "lines, comparison_scores.csv). AUROC with DeLong 95% CI.")
    usable = [(run, score) for run in runs if (score := primary_score(run))]
    if not usable:
        plot.notes.append("no run has LVH labels and an LVH score in results.csv")
        return plot
    entries = max(1 + len(saved_curves(run, "criterion")) + len(_operating_points(run)) + (
        int((run.comparison["kind"] == "baseline").sum()) if run.comparison is not None else 0)
        for run, _ in usable)
    fig, pairs = legend_panels(len(usable), 4.8, 4.6, entries + 1)
    missing_baselines = False
    for (ax, legend_ax), (run, (column, labels, _)) in zip(pairs, usable):
        ax.plot([0, 1], [0, 1], color=style.GREY, linewidth=0.6, linestyle=":")
        if run.roc_band is not None:
            band = run.roc_band
            ax.fill_between(band["fpr"], band["tpr_low"], band["tpr_high"], color=style.BLUE, alpha=0.18,
                            linewidth=0)
        auc = interval(run.metrics.get("test", {}).get("lvh_at_validation_youden", {}).get("auroc"))
        for _, (fpr, tpr) in saved_curves(run, "model").items():
            ax.plot(fpr, tpr, color=style.BLUE, linewidth=2.2,
                    label=("model" if column == "lvh_proba" else f"model ({PROBABILITY_COLUMNS.get(column, column)})")
                    + f": {auc[0]:.2f} ({auc[1]:.2f}-{auc[2]:.2f})")
        comparison = run.comparison if run.comparison is not None else pd.DataFrame(columns=["name", "kind"])
        by_name = {r.name: r for r in comparison.itertuples()}
        for i, (name, (f, t)) in enumerate(saved_curves(run, "criterion").items()):
            colour, ls = line_style("criterion", i)
            row = by_name.get(name)
            auc_text = f": {row.auroc:.2f} ({row.auroc_low:.2f}-{row.auroc_high:.2f})" if row is not None else ""
            ax.plot(f, t, color=colour, linewidth=1, linestyle=ls, label=name + auc_text)
            if row is not None:
                ax.plot(1 - row.specificity, row.sensitivity, marker=style.MARKERS[(i + 1) % len(style.MARKERS)],
                        color=colour, mfc="white", markersize=6, linestyle="none")
        for label, sens, spec, marker in _operating_points(run):
            ax.plot(1 - spec, sens, marker=marker, color=style.BLUE, markeredgecolor=style.BLACK, markersize=7,
                    linestyle="none", label=f"model at {label}", zorder=4)
        baselines = comparison[comparison["kind"] == "baseline"] if len(comparison) else comparison
        baseline_curves = saved_curves(run, "baseline")
        for i, row in enumerate(baselines.itertuples()):
            label = f"{row.name}: {row.auroc:.2f} ({row.auroc_low:.2f}-{row.auroc_high:.2f})"
            marker = style.MARKERS[(i + 5) % len(style.MARKERS)]
            colour, ls = line_style("baseline", i)  # dark and distinct from the criteria's colours
            if row.name in baseline_curves:
                f, t = baseline_curves[row.name]
                # one legend entry shows the curve's line and its operating point's marker together
                ax.plot(f, t, color=colour, linewidth=0.9, marker=marker, markevery=[], linestyle=ls, label=label)
                label = None
            ax.errorbar(1 - row.specificity, row.sensitivity,
                        xerr=[[row.specificity_high - row.specificity], [row.specificity - row.specificity_low]],
                        yerr=[[row.sensitivity - row.sensitivity_low], [row.sensitivity_high - row.sensitivity]],
                        fmt=marker, color=colour, markersize=6, elinewidth=0.6, capsize=2, label=label)
        missing_baselines |= bool(len(baselines)) and not baseline_curves
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title(f"{run.label}\n{run.cohort_name}: {int(labels.sum())} LVH of {len(labels)}")
        legend_below(ax, legend_ax, title="AUROC (95% CI)")
    if missing_baselines:
        plot.notes.append("ML baselines are shown as operating points only: the runs do not save their "
                          "per-participant scores, so their full curves cannot be drawn")
    plot.figure = fig
    return plot


WEIGHTINGS = {"sample": "at the sample's prevalence", "target": "re-weighted to the target prevalence"}


@register_figure(order=40)
def pr_curves(runs: list[RunData]) -> Plot:
    plot = Plot("precision_recall", "Precision-recall curves",
                "Model (thick line; shaded: pointwise bootstrap 95% band, stratified, 200 resamples) and the classic "
                "criteria (thin lines) on the test participants (pr_curves.csv, pr_band.csv). Left: at the sample's "
                "LVH prevalence; right, where the run records a target prevalence: every operating point's "
                "precision re-weighted to it from its sensitivity and specificity (PPV = sens x p / (sens x p + "
                "(1 - spec)(1 - p))), the curves a population with that prevalence would give. Dotted: the "
                "prevalence (a score without information). AUPRC: average precision at the sample's prevalence with "
                "its bootstrap 95% interval.")
    usable = [run for run in runs if run.pr_curves is not None and len(run.pr_curves)]
    if not usable:
        plot.notes.append("no run has LVH labels and an LVH score in results.csv")
        return plot
    panels = [(run, weighting) for run in usable for weighting in WEIGHTINGS
              if (run.pr_curves["weighting"] == weighting).any()]
    entries = max(run.pr_curves["curve"].nunique() for run in usable) + 2
    fig, pairs = legend_panels(len(panels), 4.4, 3.8, int(np.ceil(entries / 2)))
    for (ax, legend_ax), (run, weighting) in zip(pairs, panels):
        rows = run.pr_curves[run.pr_curves["weighting"] == weighting]
        prevalence = float(rows["prevalence"].iloc[0])
        if run.pr_band is not None:
            band = run.pr_band[run.pr_band["weighting"] == weighting]
            ax.fill_between(band["recall"], band["precision_low"], band["precision_high"], color=style.BLUE,
                            alpha=0.18, linewidth=0, step="pre")
        counts = {"baseline": 0, "criterion": 0}
        for name, part in rows.groupby("curve", sort=False):
            kind = part["kind"].iloc[0]
            # from recall 0 at the first point's precision: the step then encloses the average precision
            part = pd.DataFrame({"recall": np.r_[0.0, part["recall"]],
                                 "precision": np.r_[part["precision"].iloc[0], part["precision"]]})
            if kind == "model":
                label = "model"
                if weighting == "sample":
                    ap = interval(run.metrics.get("test", {}).get("lvh_at_validation_youden", {}).get("auprc"))
                    label += f", AUPRC {ap[0]:.2f} ({ap[1]:.2f}-{ap[2]:.2f})"
                ax.step(part["recall"], part["precision"], where="pre", color=style.BLUE, linewidth=2, label=label)
            else:
                colour, ls = line_style(kind, counts.get(kind, 0))
                counts[kind] = counts.get(kind, 0) + 1
                ax.step(part["recall"], part["precision"], where="pre", color=colour, linewidth=1, linestyle=ls,
                        label=str(name))
        ax.axhline(prevalence, color=style.GREY, linestyle=":", linewidth=1, label=f"prevalence {prevalence:.2f}")
        label_panel(ax, legend_ax, (-0.01, 1.01), (-0.01, 1.01), "recall (sensitivity)", "precision (PPV)",
                    f"{run.label}, {run.cohort_name}\n{WEIGHTINGS[weighting]} {prevalence:.2f}")
    plot.figure = fig
    return plot


@register_figure(order=50)
def forest_auroc(runs: list[RunData]) -> Plot:
    plot = Plot("forest_auroc", "AUROC across models, criteria and cohorts",
                "AUROC with DeLong 95% intervals from comparison.csv (each row on the test participants where it and "
                "the model both have a score; n per row in comparison.csv); filled: models and baselines; open: "
                "classic criteria.")
    rows = []
    for run in runs:
        if run.comparison is not None and len(run.comparison):
            for r in run.comparison.itertuples():
                rows.append((run.label, run.cohort_name, r.name, r.kind, r.auroc, r.auroc_low, r.auroc_high))
        elif (report := run.metrics.get("test", {}).get("lvh_at_validation_youden")) and "auroc" in report:
            est, low, high = interval(report["auroc"])
            rows.append((run.label, run.cohort_name, "model", "model", est, low, high))
    if not rows:
        plot.notes.append("no run saved an LVH comparison or AUROC")
        return plot
    fig = style.new_figure(7.0, 0.28 * len(rows) + 1.2)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    labels = []
    groups = [r[0] for r in rows]
    for yi, (run_label, cohort, name, kind, est, low, high) in zip(y, rows):
        filled = kind != "criterion"
        colour = style.BLUE if kind == "model" else (style.BLACK if kind == "baseline" else style.GREY)
        ax.errorbar(est, yi, xerr=[[est - low], [high - est]], fmt="o" if kind == "model" else "s", color=colour,
                    mfc=colour if filled else "white", capsize=2, markersize=5)
        ax.annotate(f"{est:.2f} ({low:.2f}-{high:.2f})", xy=(1.0, yi), xycoords=("axes fraction", "data"),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        labels.append(f"{name}  [{run_label}, {cohort}]" if len(set(groups)) > 1 else name)
    for i in range(1, len(rows)):
        if groups[i] != groups[i - 1]:
            ax.axhline(y[i] + 0.5, color=style.GREY, linewidth=0.5)
    ax.axvline(0.5, color=style.GREY, linestyle=":", linewidth=1)
    ax.set_yticks(y, labels)
    ax.set_xlim(min(0.3, np.nanmin([r[5] for r in rows]) - 0.02), 1.0)
    ax.set_xlabel("AUROC (95% CI)")
    plot.figure = fig
    return plot
