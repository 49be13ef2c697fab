"""Calibration of LVH probabilities and of continuous predictions; the LR thresholding of a regression model."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import (
    PROBABILITY_COLUMNS,
    RASTER_ABOVE,
    Plot,
    grid,
    legend_below,
    legend_panels,
    primary_score,
    register_figure,
    regression_stem,
)
from aiecg.report.runs import RunData


@register_figure(order=70)
def calibration_curves(runs: list[RunData]) -> Plot:
    plot = Plot("calibration", "Calibration of the LVH probabilities",
                "Observed LVH frequency against mean predicted probability in quantile bins, for each probability "
                "the run saved (before and after the prior-shift adjustment to the stated prevalence). Dotted: "
                "perfect calibration.")
    usable = [(run, list(run.probability_calibration["probability"].unique())) for run in runs
              if run.probability_calibration is not None and len(run.probability_calibration)
              and run.results is not None]
    if not usable:
        plot.notes.append("no run saved LVH probabilities with LVH labels")
        return plot
    fig, axes = grid(len(usable), 4.6, 3.8, cols=2)
    for ax, (run, columns) in zip(axes, usable):
        table = run.results
        labels_all = table["lvh_true"].to_numpy(float)
        saved = run.probability_calibration
        n_bins = int(saved.groupby("probability").size().max())
        for i, column in enumerate(columns):
            bins = saved[saved["probability"] == column]
            ax.plot(bins["mean_predicted"], bins["mean_observed"], marker=style.MARKERS[i],
                    linestyle=style.LINESTYLES[i], color=style.CYCLE[i],
                    label=PROBABILITY_COLUMNS.get(column, column), markersize=4)
        ax.plot([0, 1], [0, 1], ":", color=style.GREY)
        post = run.posthoc
        stated = [f"test {np.nanmean(labels_all):.3f}"]
        if post.get("target_prevalence") is not None:
            stated.append(f"stated (target) {post['target_prevalence']:.3f}")
        if post.get("model_prevalence") is not None:
            stated.append(f"model's training {post['model_prevalence']:.3f}")
        if post.get("validation_prevalence") is not None:
            stated.append(f"validation {post['validation_prevalence']:.3f}")
        ax.text(0.98, 0.02, "LVH prevalence:\n" + "\n".join(stated), transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7, bbox={"facecolor": "white", "edgecolor": style.GREY, "alpha": 0.9})
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("mean predicted LVH probability")
        ax.set_ylabel(f"observed LVH frequency ({n_bins} quantile bins)")
        ax.set_title(f"{run.label}\n{run.cohort_name}")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    plot.figure = fig
    return plot


@register_figure(order=90)
def regression_calibration(runs: list[RunData]) -> Plot:
    """Mean CMR value against mean prediction in deciles of the prediction, before and after the linear
    recalibration fitted on the validation split (``--recalib``)."""
    plot = Plot("regression_calibration", "Calibration of the predicted LV mass",
                "Mean CMR value against mean prediction in quantile bins of the prediction; circles: as predicted, "
                "squares: after the linear recalibration on sex and prediction fitted on the validation split. "
                "Dotted: identity.")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run)) and run.regression_calibration is not None]
    if not usable:
        plot.notes.append("no run predicts a continuous target")
        return plot
    if not any(f"{stem}_pred_recal" in run.results for run, stem in usable):
        plot.notes.append("no run was recalibrated (train with --recalib): only the raw predictions are shown")
    fig, axes = grid(len(usable), 4.0, 3.8)
    for ax, (run, stem) in zip(axes, usable):
        saved = run.regression_calibration
        n_bins = int(saved.groupby("prediction").size().max())
        series = [(f"{stem}_pred", "as predicted", "o", "-", style.BLUE),
                  (f"{stem}_pred_recal", "recalibrated", "s", "--", style.VERMILLION)]
        values = []
        for column, label, marker, ls, colour in series:
            bins = saved[saved["prediction"] == column]
            if not len(bins):
                continue
            mean_pred, mean_true = bins["mean_predicted"].to_numpy(float), bins["mean_observed"].to_numpy(float)
            ax.plot(mean_pred, mean_true, marker=marker, linestyle=ls, color=colour, label=label, markersize=4)
            values += [*mean_pred, *mean_true]
        low, high = min(values), max(values)
        pad = 0.05 * (high - low)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], ":", color=style.GREY)
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(style.axis_label(stem, "mean predicted"))
        ax.set_ylabel(style.axis_label(stem, "mean CMR"))
        ax.set_title(f"{run.label}\n{run.cohort_name} ({n_bins} quantile bins)")
        ax.legend(loc="upper left", frameon=False, fontsize=7)
    plot.figure = fig
    return plot


@register_figure(order=100)
def lr_thresholding(runs: list[RunData]) -> Plot:
    """LVH probability of the LR pipeline against the predicted (indexed) mass, by sex, with the cut-off each
    sex gets at the validation-chosen threshold and the guideline cut-offs of the target."""
    plot = Plot("lr_thresholding", "LR thresholding",
                "LVH probability of the logistic regression on sex and predicted value (fitted on the validation "
                "split) against the prediction. Lines: the saved LR model per sex; vertical solid: where each sex "
                "crosses the validation-chosen threshold (horizontal); vertical dotted: guideline CMR cut-offs.")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run)) and "lvh_proba_lr" in run.results
              and run.lr_curve is not None and run.lr_cutoffs is not None]
    if not usable:
        plot.notes.append("no regression run saved an LR model and lvh_proba_lr")
        return plot
    fig, pairs = legend_panels(len(usable), 5.2, 3.8, 5)
    for (ax, legend_ax), (run, stem) in zip(pairs, usable):
        table = run.results
        threshold = run.posthoc.get("threshold")
        x = table[f"{stem}_pred"].to_numpy(float)
        lvh = table["lvh_true"].to_numpy(float) == 1
        thresholds = run.spec.lvh_thresholds if run.spec is not None else None
        for sex in (0, 1):
            own = table["is_m"].to_numpy() == sex
            colour = style.SEX_COLOUR[sex]
            ax.scatter(x[own & ~lvh], table["lvh_proba_lr"].to_numpy(float)[own & ~lvh], s=14, facecolors="none",
                       edgecolors=colour, marker=style.SEX_MARKER[sex], linewidths=0.8,
                       label=f"{style.SEX_LABEL[sex]}, no LVH", rasterized=len(x) > RASTER_ABOVE)
            ax.scatter(x[own & lvh], table["lvh_proba_lr"].to_numpy(float)[own & lvh], s=28, color=colour,
                       edgecolors=style.BLACK, marker=style.SEX_MARKER[sex], linewidths=0.6,
                       label=f"{style.SEX_LABEL[sex]}, LVH", zorder=3, rasterized=len(x) > RASTER_ABOVE)
            ls = "-" if sex else "--"
            curve = run.lr_curve[run.lr_curve["is_m"] == sex]
            ax.plot(curve["value"], curve["lvh_proba"], color=colour, linestyle=ls, linewidth=1.2,
                    label=f"LR model, {style.SEX_LABEL[sex]}")
            cut = float(run.lr_cutoffs.set_index("is_m").loc[sex, "learned_cutoff"])
            if np.isfinite(cut):
                ax.axvline(cut, color=colour, linestyle=ls, linewidth=0.8,
                           label=f"learned cut-off, {style.SEX_LABEL[sex]}: {cut:.1f}")
            if thresholds is not None:
                guideline = thresholds.male if sex else thresholds.female
                ax.axvline(guideline, color=colour, linestyle=":", linewidth=1,
                           label=f"CMR guideline cut-off, {style.SEX_LABEL[sex]}: {guideline:g}")
        if threshold is not None:
            ax.axhline(threshold, color=style.BLACK, linewidth=0.8)
            ax.annotate(f"validation threshold {threshold:.3f}", xy=(1.0, threshold),
                        xycoords=("axes fraction", "data"), xytext=(-2, 2), textcoords="offset points", fontsize=7,
                        ha="right", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(style.axis_label(stem, "predicted"))
        ax.set_ylabel("LVH probability (LR)")
        ax.set_title(f"{run.label}\n{run.cohort_name}")
        legend_below(ax, legend_ax, ncol=2)
    plot.figure = fig
    return plot


def _number(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "not estimable"


GROUP_STYLE = {"all": (style.BLACK, "o", "-"), "women": (style.VERMILLION, "o", "--"),
               "men": (style.BLUE, "^", "-.")}


@register_figure(order=75)
def calibration_by_sex(runs: list[RunData]) -> Plot:
    """Reliability of the primary LVH probability overall and by sex, with Wilson 95% intervals per bin, the
    calibration slope and intercept per group, and the distribution of the predictions by LVH status."""
    plot = Plot("calibration_by_sex", "Calibration of the LVH probability, overall and by sex",
                "Observed LVH frequency against mean predicted probability in quantile bins (within each group); "
                "error bars: Wilson 95% intervals per bin. In the legend: calibration slope (1 is ideal; below 1 "
                "the predictions are too extreme) and intercept (calibration-in-the-large, slope fixed at 1; 0 is "
                "ideal; Van Calster et al. 2016). Below: the predictions of participants with and without LVH. "
                "An evaluation folder of another cohort gets its own panel: calibration on external data.")
    usable = [run for run in runs if run.calibration_curve is not None and len(run.calibration_curve)]
    if not usable:
        plot.notes.append("no run has LVH probabilities with LVH labels in both sexes")
        return plot
    cols = min(len(usable), 2)
    rows = int(np.ceil(len(usable) / cols))
    fig = style.new_figure(4.8 * cols, 5.6 * rows)
    for sub, run in zip(fig.subfigures(rows, cols, squeeze=False).ravel(), usable):
        ax, hist = sub.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        curve = run.calibration_curve
        for i, (group, rows_of) in enumerate(curve.groupby("group", sort=False)):
            colour, marker, ls = GROUP_STYLE.get(group, (style.CYCLE[i], style.MARKERS[i], style.LINESTYLES[i]))
            first = rows_of.iloc[0]
            x, y = rows_of["mean_predicted"].to_numpy(float), rows_of["observed"].to_numpy(float)
            ax.errorbar(x + 0.004 * (i - 1), y, yerr=[y - rows_of["low"], rows_of["high"] - y], color=colour,
                        marker=marker, linestyle=ls, capsize=2, markersize=4, linewidth=1,
                        label=f"{group} (n={first['n_group']}, {first['events_group']} LVH): slope "
                              f"{_number(first['slope'])}, intercept {_number(first['intercept'])}")
        absent = [g for g in GROUP_STYLE if g not in set(curve["group"])]
        if absent:
            plot.notes.append(f"{run.label}: {', '.join(absent)} not drawn (fewer than 6 participants or one "
                              "class only)")
        ax.plot([0, 1], [0, 1], ":", color=style.GREY)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_ylabel("observed LVH frequency")
        ax.set_title(f"{run.label}\n{run.cohort_name}")
        ax.legend(loc="upper left", fontsize=6.5, frameon=False)
        column = primary_score(run)[0]
        table = run.results
        lvh = table["lvh_true"].to_numpy(float) == 1
        probs = table[column].to_numpy(float)
        bins = np.linspace(0, 1, 26)
        hist.hist(probs[~lvh & np.isfinite(probs)], bins=bins, color=style.GREY, alpha=0.7, label="no LVH")
        hist.hist(probs[lvh & np.isfinite(probs)], bins=bins, histtype="step", color=style.VERMILLION,
                  linewidth=1.4, label="LVH")
        hist.set_xlabel(f"predicted LVH probability ({PROBABILITY_COLUMNS.get(column, column)})")
        hist.set_ylabel("participants")
        hist.legend(fontsize=7, frameon=False)
    plot.figure = fig
    return plot
