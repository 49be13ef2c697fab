"""Agreement of continuous predictions with CMR: predicted against CMR, Bland-Altman."""

from __future__ import annotations

import numpy as np

from aiecg.report import style
from aiecg.report.figures.base import (
    RASTER_ABOVE,
    Plot,
    grid,
    interval,
    register_figure,
    regression_stem,
)
from aiecg.report.runs import RunData


@register_figure(order=10)
def predicted_vs_true(runs: list[RunData]) -> Plot:
    """Predicted against CMR (indexed) LV mass by sex, LVH cases filled, identity and least-squares lines."""
    plot = Plot("predicted_vs_cmr", "Predicted vs CMR LV mass",
                "One panel per run. Open markers: no LVH; filled: LVH by CMR. Circles: women; triangles: men. "
                "Dashed: identity; solid: least-squares line.")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run))]
    if not usable:
        plot.notes.append("no run predicts a continuous target (no *_pred column in results.csv)")
        return plot
    fig, axes = grid(len(usable))
    for ax, (run, stem) in zip(axes, usable):
        table = run.results
        x, y = table[f"{stem}_true"].to_numpy(float), table[f"{stem}_pred"].to_numpy(float)
        lvh = table["lvh_true"].to_numpy(float) == 1 if "lvh_true" in table else np.zeros(len(x), bool)
        for sex in (0, 1):
            own = table["is_m"].to_numpy() == sex
            ax.scatter(x[own & ~lvh], y[own & ~lvh], s=16, marker=style.SEX_MARKER[sex], facecolors="none",
                       edgecolors=style.SEX_COLOUR[sex], linewidths=0.8, alpha=0.8,
                       label=f"{style.SEX_LABEL[sex]}, no LVH", rasterized=len(x) > RASTER_ABOVE)
            ax.scatter(x[own & lvh], y[own & lvh], s=30, marker=style.SEX_MARKER[sex], color=style.SEX_COLOUR[sex],
                       edgecolors=style.BLACK, linewidths=0.6, label=f"{style.SEX_LABEL[sex]}, LVH", zorder=3,
                       rasterized=len(x) > RASTER_ABOVE)
        finite = np.isfinite(x) & np.isfinite(y)
        low, high = np.nanmin([x[finite].min(), y[finite].min()]), np.nanmax([x[finite].max(), y[finite].max()])
        pad = 0.05 * (high - low)
        line = np.array([low - pad, high + pad])
        ax.plot(line, line, "--", color=style.BLACK, linewidth=1, label="identity")
        if finite.sum() >= 2:
            slope, intercept = np.polyfit(x[finite], y[finite], 1)
            ax.plot(line, intercept + slope * line, "-", color=style.GREEN, linewidth=1.5, label="least-squares fit")
        ax.set_xlim(line)
        ax.set_ylim(line)
        ax.set_aspect("equal")
        metric = run.metrics.get("test", {}).get(stem, {})
        r, mae = interval(metric.get("pearson_r")), interval(metric.get("mae"))
        ax.set_title(f"{run.label}\n{run.cohort_name}, n = {int(finite.sum())}")
        fit_text = f"\nfit: y = {intercept:.1f} + {slope:.2f}x" if finite.sum() >= 2 else ""
        ax.text(0.03, 0.97, f"r = {r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f})\nMAE = {mae[0]:.1f} ({mae[1]:.1f}-{mae[2]:.1f})"
                + fit_text,
                transform=ax.transAxes, va="top", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        ax.set_xlabel(style.axis_label(stem, "CMR"))
        ax.set_ylabel(style.axis_label(stem, "predicted"))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2 if len(usable) == 1 else 3, frameon=False)
    plot.figure = fig
    return plot


@register_figure(order=20)
def bland_altman(runs: list[RunData]) -> Plot:
    """Bland-Altman: difference against mean, with the bias and the limits of agreement and their 95% intervals
    (Bland & Altman, Lancet 1986)."""
    plot = Plot("bland_altman", "Bland-Altman agreement",
                "Difference (predicted - CMR) against their mean. Solid line: bias; dashed lines: 95% limits of "
                "agreement (bias ± 1.96 SD); shaded bands: their bootstrap 95% intervals from metrics.json. Green: "
                "least-squares regression of the difference on the mean, whose slope (with its 95% interval and "
                "t-test) tests a proportional bias (Bland & Altman 1999).")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run))]
    if not usable:
        plot.notes.append("no run predicts a continuous target")
        return plot
    fig, axes = grid(len(usable), 5.2, 3.4)
    for ax, (run, stem) in zip(axes, usable):
        table = run.results
        truth, pred = table[f"{stem}_true"].to_numpy(float), table[f"{stem}_pred"].to_numpy(float)
        mean, diff = (truth + pred) / 2, pred - truth
        for sex in (0, 1):
            own = table["is_m"].to_numpy() == sex
            ax.scatter(mean[own], diff[own], s=14, marker=style.SEX_MARKER[sex], facecolors="none",
                       edgecolors=style.SEX_COLOUR[sex], linewidths=0.8, label=style.SEX_LABEL[sex],
                       rasterized=len(mean) > RASTER_ABOVE)
        metric = run.metrics.get("test", {}).get(stem, {})
        lines = (("bias", "-", "bias"), ("loa_lower", "--", "lower LoA"), ("loa_upper", "--", "upper LoA"))
        for key, ls, name in lines:
            est, low, high = interval(metric.get(key))
            if not np.isfinite(est):
                continue
            ax.axhline(est, color=style.BLACK, linestyle=ls, linewidth=1)
            if np.isfinite(low) and np.isfinite(high):
                ax.axhspan(low, high, color=style.GREY, alpha=0.25, linewidth=0)
            ax.annotate(f"{name}\n{est:.1f} ({low:.1f} to {high:.1f})", xy=(1.0, est),
                        xycoords=("axes fraction", "data"), xytext=(4, 0), textcoords="offset points", ha="left",
                        va="center", fontsize=7)  # beside the panel: never over the points
        fit = run.proportional_bias
        if fit is not None and np.isfinite(fit.get("slope", np.nan)):
            span = np.array([np.nanmin(mean), np.nanmax(mean)])
            ax.plot(span, fit["intercept"] + fit["slope"] * span, color=style.GREEN, linewidth=1.4,
                    linestyle=style.LINESTYLES[1], label="difference on mean (proportional bias)")
            p_text = "<0.001" if fit["p"] < 0.001 else f"{fit['p']:.3f}"
            ax.text(0.02, 0.98, f"proportional bias: slope {fit['slope']:.2f} ({fit['slope_low']:.2f} to "
                    f"{fit['slope_high']:.2f}), p {p_text}" if fit["p"] < 0.001 else
                    f"proportional bias: slope {fit['slope']:.2f} ({fit['slope_low']:.2f} to "
                    f"{fit['slope_high']:.2f}), p = {p_text}", transform=ax.transAxes, va="top", fontsize=7,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        ax.axhline(0, color=style.GREY, linewidth=0.6, linestyle=":")
        unit = style.UNITS.get(stem, "")
        ax.set_xlabel(f"mean of predicted and CMR {style.NAMES.get(stem, stem)} ({unit})")
        ax.set_ylabel(f"predicted - CMR ({unit})")
        ax.set_title(f"{run.label}\n{run.cohort_name}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    plot.figure = fig
    return plot
