"""The report's figures, drawn from saved results only (results.csv, metrics.json, comparison.csv, epochs.csv,
the store's median beats and measurements, and saved attributions). Nothing here runs a model.

Every function returns :class:`Plot` objects; a panel that needs data a run did not save is skipped with a note
saying what is missing, never drawn from a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from aiecg.evaluate.bootstrap import as_generator, resample_indices
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


def regression_stem(run: RunData) -> str | None:
    spec = run.spec
    if spec is None or not spec.is_regression or run.results is None:
        return None
    stem = spec.stem
    return stem if stem and f"{stem}_pred" in run.results else None


def _grid(n: int, width: float = 3.6, height: float = 3.4, cols: int = 3) -> tuple[Figure, list]:
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    fig = style.new_figure(width * cols, height * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _legend_panels(n: int, width: float, height: float, legend_rows: int, cols: int = 2) -> tuple[Figure, list]:
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


def _legend_below(ax, legend_ax, ncol: int = 1, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    legend_ax.legend(handles, labels, loc="upper center", fontsize=7, frameon=False, ncol=ncol, title=title,
                     title_fontsize=7)


def _label_panel(ax, legend_ax, xlim: tuple[float, float], ylim: tuple[float, float], xlabel: str, ylabel: str,
                 title: str) -> None:
    """Limits, axis labels and title of a panel, and its legend in the area below it (two columns)."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_below(ax, legend_ax, ncol=2)


def _interval(d: dict | None) -> tuple[float, float, float]:
    d = d or {}
    return float(d.get("estimate", np.nan)), float(d.get("low", np.nan)), float(d.get("high", np.nan))


# --- agreement -------------------------------------------------------------------------------------------------

def predicted_vs_true(runs: list[RunData]) -> Plot:
    """Predicted against CMR (indexed) LV mass by sex, LVH cases filled, identity and least-squares lines."""
    plot = Plot("predicted_vs_cmr", "Predicted vs CMR LV mass",
                "One panel per run. Open markers: no LVH; filled: LVH by CMR. Circles: women; triangles: men. "
                "Dashed: identity; solid: least-squares line.")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run))]
    if not usable:
        plot.notes.append("no run predicts a continuous target (no *_pred column in results.csv)")
        return plot
    fig, axes = _grid(len(usable))
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
        r, mae = _interval(metric.get("pearson_r")), _interval(metric.get("mae"))
        ax.set_title(f"{run.label}\n{run.cohort_name}, n = {int(finite.sum())}")
        fit_text = f"\nfit: y = {intercept:.1f} + {slope:.2f}x" if finite.sum() >= 2 else ""
        ax.text(0.03, 0.97, f"r = {r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f})\nMAE = {mae[0]:.1f} ({mae[1]:.1f}-{mae[2]:.1f})"
                + fit_text,
                transform=ax.transAxes, va="top", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        ax.set_xlabel(style.axis_label(stem, "CMR"))
        ax.set_ylabel(style.axis_label(stem, "predicted"))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    plot.figure = fig
    return plot


def bland_altman(runs: list[RunData]) -> Plot:
    """Bland-Altman: difference against mean, with the bias and the limits of agreement and their 95% intervals
    (Bland & Altman, Lancet 1986)."""
    plot = Plot("bland_altman", "Bland-Altman agreement",
                "Difference (predicted - CMR) against their mean. Solid line: bias; dashed lines: 95% limits of "
                "agreement (bias ± 1.96 SD); shaded bands: their bootstrap 95% intervals from metrics.json.")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run))]
    if not usable:
        plot.notes.append("no run predicts a continuous target")
        return plot
    fig, axes = _grid(len(usable), 4.2, 3.2)
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
            est, low, high = _interval(metric.get(key))
            if not np.isfinite(est):
                continue
            ax.axhline(est, color=style.BLACK, linestyle=ls, linewidth=1)
            if np.isfinite(low) and np.isfinite(high):
                ax.axhspan(low, high, color=style.GREY, alpha=0.25, linewidth=0)
            ax.annotate(f"{name} {est:.1f} ({low:.1f} to {high:.1f})", xy=(1.0, est),
                        xycoords=("axes fraction", "data"),
                        xytext=(-2, 2), textcoords="offset points", ha="right", va="bottom", fontsize=7,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
        ax.axhline(0, color=style.GREY, linewidth=0.6, linestyle=":")
        unit = style.UNITS.get(stem, "")
        ax.set_xlabel(f"mean of predicted and CMR {style.NAMES.get(stem, stem)} ({unit})")
        ax.set_ylabel(f"predicted - CMR ({unit})")
        ax.set_title(f"{run.label}\n{run.cohort_name}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    plot.figure = fig
    return plot


# --- discrimination --------------------------------------------------------------------------------------------

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


def roc_band(labels: np.ndarray, scores: np.ndarray, grid: np.ndarray, n_resamples: int = 200,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95% band of the ROC curve by a stratified bootstrap with vertical averaging (sensitivity at
    fixed 1 - specificity; Macskassy & Provost 2004)."""
    curves = []
    for block in resample_indices(len(labels), n_resamples, as_generator(seed), stratify=labels):  # THE bootstrap
        for idx in block:
            fpr, tpr, _ = roc_curve(labels[idx], scores[idx])
            curves.append(np.interp(grid, fpr, tpr))
    return np.quantile(curves, 0.025, axis=0), np.quantile(curves, 0.975, axis=0)


def criteria_scores(run: RunData) -> dict[str, np.ndarray]:
    """Each classic criterion's score minus its sex-specific cut-off for the run's results rows, as the evaluation
    saved them (comparison_scores.csv), else from the measurements of their median beats in the store."""
    if run.results is None:
        return {}
    saved, comparison = run.comparison_scores, run.comparison
    if saved is not None and comparison is not None and len(saved) == len(run.results):
        names = comparison.loc[comparison["kind"] == "criterion", "name"]
        return {name: saved[f"score: {name}"].to_numpy(float) for name in names if f"score: {name}" in saved}
    if run.store is None:  # a run written before comparison_scores.csv existed: from the store's measurements
        return {}
    from aiecg.workflows.evaluate import criteria_scores

    try:
        rows = criteria_scores(run.store, run.results["eid"].astype(str).to_numpy(), run.results["is_m"].to_numpy())
    except (KeyError, ValueError):
        return {}
    return {row.name: row.scores for row in rows}


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
    criteria = [criteria_scores(run) for run, _ in usable]
    entries = max(1 + len(c) + len(_operating_points(run)) + (
        int((run.comparison["kind"] == "baseline").sum()) if run.comparison is not None else 0)
        for (run, _), c in zip(usable, criteria))
    fig, pairs = _legend_panels(len(usable), 4.8, 4.6, entries + 1)
    grid = np.linspace(0, 1, 101)
    missing_baselines = False
    for (ax, legend_ax), (run, (column, labels, scores)), run_criteria in zip(pairs, usable, criteria):
        ax.plot([0, 1], [0, 1], color=style.GREY, linewidth=0.6, linestyle=":")
        low, high = roc_band(labels, scores, grid)
        ax.fill_between(grid, low, high, color=style.BLUE, alpha=0.18, linewidth=0)
        fpr, tpr, _ = roc_curve(labels, scores)
        auc = _interval(run.metrics.get("test", {}).get("lvh_at_validation_youden", {}).get("auroc"))
        ax.plot(fpr, tpr, color=style.BLUE, linewidth=2.2,
                label=f"model ({column}): {auc[0]:.2f} ({auc[1]:.2f}-{auc[2]:.2f})")
        comparison = run.comparison if run.comparison is not None else pd.DataFrame(columns=["name", "kind"])
        by_name = {r.name: r for r in comparison.itertuples()}
        y_all = run.results["lvh_true"].to_numpy(float)
        for i, (name, crit) in enumerate(run_criteria.items()):
            keep = np.isfinite(crit) & np.isin(y_all, (0, 1))
            if len(np.unique(y_all[keep])) < 2:
                continue
            f, t, _ = roc_curve(y_all[keep], crit[keep])
            colour, ls = style.CYCLE[(i + 1) % len(style.CYCLE)], style.LINESTYLES[(i + 1) % len(style.LINESTYLES)]
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
        saved = run.comparison_scores
        for i, row in enumerate(baselines.itertuples()):
            column = f"score: {row.name}"
            label = f"{row.name}: {row.auroc:.2f} ({row.auroc_low:.2f}-{row.auroc_high:.2f})"
            marker = style.MARKERS[(i + 5) % len(style.MARKERS)]
            if saved is not None and column in saved and len(saved) == len(y_all):
                base = saved[column].to_numpy(float)
                keep = np.isfinite(base) & np.isin(y_all, (0, 1))
                if len(np.unique(y_all[keep])) == 2:
                    f, t, _ = roc_curve(y_all[keep], base[keep])
                    # one legend entry shows the curve's line and its operating point's marker together
                    ax.plot(f, t, color=style.BLACK, linewidth=0.8, alpha=0.7, marker=marker, markevery=[],
                            linestyle=style.LINESTYLES[(i + 2) % len(style.LINESTYLES)], label=label)
                    label = None
            ax.errorbar(1 - row.specificity, row.sensitivity,
                        xerr=[[row.specificity_high - row.specificity], [row.specificity - row.specificity_low]],
                        yerr=[[row.sensitivity - row.sensitivity_low], [row.sensitivity_high - row.sensitivity]],
                        fmt=marker, color=style.BLACK, markersize=6, elinewidth=0.6, capsize=2, label=label)
        missing_baselines |= bool(len(baselines)) and saved is None
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title(f"{run.label}\n{run.cohort_name}: {int(labels.sum())} LVH of {len(labels)}")
        _legend_below(ax, legend_ax, title="AUROC (95% CI)")
    if missing_baselines:
        plot.notes.append("ML baselines are shown as operating points only: the runs do not save their "
                          "per-participant scores, so their full curves cannot be drawn")
    plot.figure = fig
    return plot


def pr_curves(runs: list[RunData]) -> Plot:
    plot = Plot("precision_recall", "Precision-recall curves",
                "Model and classic criteria on the test participants; dotted: LVH prevalence (a score without "
                "information). AUPRC: average precision with its bootstrap 95% interval.")
    usable = [(run, score) for run in runs if (score := primary_score(run))]
    if not usable:
        plot.notes.append("no run has LVH labels and an LVH score in results.csv")
        return plot
    criteria = [criteria_scores(run) for run, _ in usable]
    fig, pairs = _legend_panels(len(usable), 4.4, 3.8, int(np.ceil((2 + max(map(len, criteria))) / 2)))
    for (ax, legend_ax), (run, (_, labels, scores)), run_criteria in zip(pairs, usable, criteria):
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = _interval(run.metrics.get("test", {}).get("lvh_at_validation_youden", {}).get("auprc"))
        ax.step(recall, precision, where="post", color=style.BLUE, linewidth=2,
                label=f"model, AUPRC {ap[0]:.2f} ({ap[1]:.2f}-{ap[2]:.2f})")
        for i, (name, crit) in enumerate(run_criteria.items()):
            y_all = run.results["lvh_true"].to_numpy(float)
            keep = np.isfinite(crit) & np.isin(y_all, (0, 1))
            if len(np.unique(y_all[keep])) < 2:
                continue
            p, r, _ = precision_recall_curve(y_all[keep], crit[keep])
            ax.step(r, p, where="post", color=style.CYCLE[(i + 1) % len(style.CYCLE)], linewidth=1,
                    linestyle=style.LINESTYLES[(i + 1) % len(style.LINESTYLES)], label=name)
        ax.axhline(labels.mean(), color=style.GREY, linestyle=":", linewidth=1, label=f"prevalence {labels.mean():.2f}")
        _label_panel(ax, legend_ax, (-0.01, 1.01), (-0.01, 1.01), "recall (sensitivity)", "precision (PPV)",
                     f"{run.label}\n{run.cohort_name}")
    plot.figure = fig
    return plot


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
            est, low, high = _interval(report["auroc"])
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


SUBGROUP_NAMES = {"is_m": {"0": "female", "1": "male"}}


def _subgroup_rows(block: dict, metric: str) -> list[tuple[str, float, float, float, int]]:
    rows = [("all", *_interval(block.get("overall", {}).get(metric)), int(block.get("overall", {}).get("n", 0)))]
    cuts = block.get("cut_points", {})
    for column, levels in block.get("subgroups", {}).items():
        for level, report in levels.items():
            name = SUBGROUP_NAMES.get(column, {}).get(level)
            if name is None:
                c1, c2 = cuts.get(column, [np.nan, np.nan])
                span = {"T1": f"≤ {c1:.3g}", "T2": f"{c1:.3g}-{c2:.3g}", "T3": f"> {c2:.3g}"}.get(level, "")
                name = f"{column.upper() if column == 'bmi' else column} {level} ({span})"
            rows.append((name, *_interval(report.get(metric)), int(report.get("n", 0))))
    return rows


def subgroups(runs: list[RunData]) -> Plot:
    plot = Plot("subgroups", "Subgroups by sex, age and BMI tertile",
                "Estimates with 95% intervals per subgroup (metrics.json 'subgroups'); tertile cut-points of the "
                "evaluated cohort in brackets; n per subgroup on the right.")
    panels = []
    for run in runs:
        for key, block in run.metrics.get("subgroups", {}).items():
            metric, label = ("auroc", "AUROC (LVH)") if key == "lvh" else ("mae", f"MAE {style.NAMES.get(key, key)} "
                                                                                   f"({style.UNITS.get(key, '')})")
            panels.append((run, label, _subgroup_rows(block, metric)))
    if not panels:
        plot.notes.append("no run saved subgroup metrics")
        return plot
    fig, axes = _grid(len(panels), 4.4, 0.3 * max(len(p[2]) for p in panels) + 1.3, cols=2)
    for ax, (run, label, rows) in zip(axes, panels):
        y = np.arange(len(rows))[::-1]
        for yi, (_, est, low, high, n) in zip(y, rows):
            if np.isfinite(est):
                ax.errorbar(est, yi, xerr=[[est - low], [high - est]] if np.isfinite(low) else None, fmt="o",
                            color=style.BLUE if yi == y[0] else style.BLACK, capsize=2, markersize=4)
            else:  # e.g. AUROC of a subgroup with one class only: say so rather than leave a silent gap
                ax.annotate("not estimable", xy=(0.02, yi), xycoords=("axes fraction", "data"), va="center",
                            fontsize=7, color=style.GREY)
            ax.annotate(f"n={n}", xy=(1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7)
        ax.set_yticks(y, [r[0] for r in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        overall = rows[0][1]
        if np.isfinite(overall):
            ax.axvline(overall, color=style.GREY, linestyle=":", linewidth=1)
        ax.set_xlabel(label)
        ax.set_title(f"{run.label}, {run.cohort_name}")
    plot.figure = fig
    return plot


# --- calibration and thresholds -------------------------------------------------------------------------------

def reliability(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted and observed frequency per quantile bin, and bin sizes."""
    order = np.argsort(probs, kind="stable")
    bins = [b for b in np.array_split(order, n_bins) if len(b)]
    return (np.array([probs[b].mean() for b in bins]), np.array([labels[b].mean() for b in bins]),
            np.array([len(b) for b in bins]))


def calibration_curves(runs: list[RunData]) -> Plot:
    plot = Plot("calibration", "Calibration of the LVH probabilities",
                "Observed LVH frequency against mean predicted probability in quantile bins, for each probability "
                "the run saved (before and after the prior-shift adjustment to the stated prevalence). Dotted: "
                "perfect calibration.")
    usable = []
    for run in runs:
        table = run.results
        if table is None or "lvh_true" not in table or table["lvh_true"].nunique() < 2:
            continue
        columns = [c for c in PROBABILITY_COLUMNS if c in table]
        if columns:
            usable.append((run, columns))
    if not usable:
        plot.notes.append("no run saved LVH probabilities with LVH labels")
        return plot
    fig, axes = _grid(len(usable), 4.6, 3.8, cols=2)
    for ax, (run, columns) in zip(axes, usable):
        table = run.results
        labels_all = table["lvh_true"].to_numpy(float)
        n_bins = int(np.clip(labels_all.size // 15, 3, 10))
        for i, column in enumerate(columns):
            probs = table[column].to_numpy(float)
            keep = np.isfinite(probs) & np.isfinite(labels_all)
            mean_p, observed, _ = reliability(labels_all[keep], probs[keep], n_bins)
            ax.plot(mean_p, observed, marker=style.MARKERS[i], linestyle=style.LINESTYLES[i], color=style.CYCLE[i],
                    label=PROBABILITY_COLUMNS[column], markersize=4)
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


def regression_calibration(runs: list[RunData]) -> Plot:
    """Mean CMR value against mean prediction in deciles of the prediction, before and after the linear
    recalibration fitted on the validation split (``--recalib``)."""
    plot = Plot("regression_calibration", "Calibration of the predicted LV mass",
                "Mean CMR value against mean prediction in quantile bins of the prediction; circles: as predicted, "
                "squares: after the linear recalibration on sex and prediction fitted on the validation split. "
                "Dotted: identity.")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run))]
    if not usable:
        plot.notes.append("no run predicts a continuous target")
        return plot
    if not any(f"{stem}_pred_recal" in run.results for run, stem in usable):
        plot.notes.append("no run was recalibrated (train with --recalib): only the raw predictions are shown")
    fig, axes = _grid(len(usable), 4.0, 3.8)
    for ax, (run, stem) in zip(axes, usable):
        truth = run.results[f"{stem}_true"].to_numpy(float)
        n_bins = int(np.clip(len(truth) // 10, 3, 10))
        series = [(f"{stem}_pred", "as predicted", "o", "-", style.BLUE),
                  (f"{stem}_pred_recal", "recalibrated", "s", "--", style.VERMILLION)]
        values = []
        for column, label, marker, ls, colour in series:
            if column not in run.results:
                continue
            pred = run.results[column].to_numpy(float)
            keep = np.isfinite(pred) & np.isfinite(truth)
            mean_pred, mean_true, _ = reliability(truth[keep], pred[keep], n_bins)
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


def lr_thresholding(runs: list[RunData]) -> Plot:
    """LVH probability of the LR pipeline against the predicted (indexed) mass, by sex, with the cut-off each
    sex gets at the validation-chosen threshold and the guideline cut-offs of the target."""
    plot = Plot("lr_thresholding", "LR thresholding",
                "LVH probability of the logistic regression on sex and predicted value (fitted on the validation "
                "split) against the prediction. Lines: the saved LR model per sex; vertical solid: where each sex "
                "crosses the validation-chosen threshold (horizontal); vertical dotted: guideline CMR cut-offs.")
    usable = [(run, stem) for run in runs if (stem := regression_stem(run)) and "lvh_proba_lr" in run.results
              and (run.posthoc.get("lr") is not None)]
    if not usable:
        plot.notes.append("no regression run saved an LR model and lvh_proba_lr")
        return plot
    from scipy.special import expit, logit

    fig, pairs = _legend_panels(len(usable), 5.2, 3.8, 5)
    for (ax, legend_ax), (run, stem) in zip(pairs, usable):
        table, lr = run.results, run.posthoc["lr"]
        threshold = run.posthoc.get("threshold")
        x = table[f"{stem}_pred"].to_numpy(float)
        grid = np.linspace(np.nanmin(x), np.nanmax(x), 200)
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
            ax.plot(grid, expit(lr["intercept"] + lr["coef_sex"] * sex + lr["coef_value"] * grid), color=colour,
                    linestyle=ls, linewidth=1.2, label=f"LR model, {style.SEX_LABEL[sex]}")
            if threshold is not None and lr["coef_value"]:
                cut = (logit(threshold) - lr["intercept"] - lr["coef_sex"] * sex) / lr["coef_value"]
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
        _legend_below(ax, legend_ax, ncol=2)
    plot.figure = fig
    return plot


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
    fig, pairs = _legend_panels(len(usable), 4.8, 3.8, int(np.ceil(entries / 2)))
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
        _label_panel(ax, legend_ax, (0, upper), (-0.3 * prevalence - 0.005, 1.15 * prevalence + 0.005),
                     "threshold probability of LVH", "net benefit",
                     f"{run.label}\n{run.cohort_name}: LVH prevalence {prevalence:.3f}")
    plot.figure = fig
    return plot


# --- training ---------------------------------------------------------------------------------------------------

def training_curves(runs: list[RunData]) -> Plot:
    plot = Plot("training_curves", "Training curves",
                "Loss per epoch (solid: training, dashed: validation; the target is standardised, so the loss has "
                "no unit) and learning rate (log scale). Fine-tuning runs show their stages one after another "
                "(shaded alternately); the marker is the best validation epoch of each stage.")
    usable = [run for run in runs if run.epochs]
    if not usable:
        plot.notes.append("no run saved epochs.csv")
        return plot
    fig = style.new_figure(4.2 * min(len(usable), 3), 4.6 * int(np.ceil(len(usable) / 3)))
    subfigs = np.atleast_1d(fig.subfigures(int(np.ceil(len(usable) / 3)), min(len(usable), 3), squeeze=False)).ravel()
    for sub, run in zip(subfigs, usable):
        loss_ax, lr_ax = sub.subplots(2, 1, sharex=True, height_ratios=[2, 1])
        offset = 0
        for k, (stage, table) in enumerate(run.epochs):
            epochs = table["epoch"].to_numpy() + offset
            if len(run.epochs) > 1:
                loss_ax.axvspan(offset + 0.5, epochs.max() + 0.5, color=style.GREY, alpha=0.12 * (k % 2), lw=0)
                loss_ax.annotate(stage, xy=(offset + 1, 1.0), xycoords=("data", "axes fraction"), fontsize=7, va="top")
            loss_ax.plot(epochs, table["train_loss"], "-", color=style.BLUE, label="training" if k == 0 else None)
            loss_ax.plot(epochs, table["val_loss"], "--", color=style.VERMILLION,
                         label="validation" if k == 0 else None)
            best = int(np.argmin(table["val_loss"].to_numpy()))
            loss_ax.plot(epochs[best], table["val_loss"].iloc[best], "o", color=style.VERMILLION, mfc="white",
                         label="best validation" if k == 0 else None)
            if "lr" in table:
                lr_ax.step(epochs, table["lr"], where="mid", color=style.BLACK)
            offset = epochs.max()
        if not any("lr" in t for _, t in run.epochs):
            lr_ax.text(0.5, 0.5, "learning rate not saved", transform=lr_ax.transAxes, ha="center")
        else:
            lr_ax.set_yscale("log")
        loss_ax.set_ylabel("loss")
        loss_ax.legend(frameon=False, fontsize=7)
        lr_ax.set_ylabel("learning rate")
        lr_ax.set_xlabel("epoch" + (" (stages concatenated)" if len(run.epochs) > 1 else ""))
        lr_ax.xaxis.get_major_locator().set_params(integer=True)
        sub.suptitle(run.label, fontsize=10)
    plot.figure = fig
    return plot


# --- median beats -----------------------------------------------------------------------------------------------

def _time_ms(store) -> np.ndarray:
    fs, window, r_offset = store.manifest["fs"], store.manifest["window"], store.manifest["r_offset"]
    return (np.arange(window) - r_offset) * 1000.0 / fs


def beat_grid(time_ms: np.ndarray, leads: list[str], curves: list[tuple[str, np.ndarray, dict]], title: str,
              colour_by: np.ndarray | None = None, colour_label: str = "") -> Figure:
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
        limit = float(np.nanmax(np.abs(colour_by))) or 1.0
    for k, (ax, lead) in enumerate(zip(axes, leads)):
        for i, (name, beat, kw) in enumerate(curves):
            if colour_by is not None and i == 0:
                # colour: sign and size; size: magnitude (so the map survives greyscale printing)
                mappable = ax.scatter(time_ms, beat[k], c=colour_by[k], cmap="RdBu_r", vmin=-limit, vmax=limit,
                                      s=1 + 30 * np.abs(colour_by[k]) / limit, linewidths=0, zorder=1)
                ax.plot(time_ms, beat[k], color=style.BLACK, linewidth=0.5, zorder=2)
            else:
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


def median_beats(runs: list[RunData]) -> list[Plot]:
    """Average 12-lead median beat of true LVH vs no LVH, and of the lowest vs highest fifth of predictions."""
    plots = []
    for run in runs:
        if run.store is None or run.results is None:
            continue
        store, table = run.store, run.results
        leads = [lead for lead in LEAD_ORDER if lead in store.leads]
        ids = table["eid"].astype(str).to_numpy()
        try:
            beats = store.medians(ids, leads)
        except Exception as exc:  # noqa: BLE001 - a store that no longer matches the run: say so, draw the rest
            plots.append(Plot(f"median_beats_{len(plots)}", f"Median beats, {run.label}", "",
                              notes=[f"store {store.root} does not hold the run's participants ({exc})"]))
            continue
        time_ms = _time_ms(store)
        slug = "".join(c if c.isalnum() else "_" for c in run.label)
        if "lvh_true" in table and table["lvh_true"].nunique() == 2:
            lvh = table["lvh_true"].to_numpy(float) == 1
            curves = [(f"LVH (n={lvh.sum()})", beats[lvh].mean(axis=0), {"color": style.VERMILLION, "linewidth": 1.4}),
                      (f"no LVH (n={(~lvh).sum()})", beats[~lvh].mean(axis=0),
                       {"color": style.BLACK, "linestyle": "--", "linewidth": 1})]
            plots.append(Plot(f"median_beats_lvh_{slug}", f"Median beats by CMR LVH, {run.label}",
                              "Average of the participants' median beats (test participants) with and without LVH.",
                              beat_grid(time_ms, leads, curves, f"{run.label}: LVH vs no LVH by CMR")))
        stem = regression_stem(run)
        column = f"{stem}_pred" if stem else (primary_score(run) or (None,))[0]
        if column is not None:
            pred = table[column].to_numpy(float)
            low_cut, high_cut = np.nanquantile(pred, [0.2, 0.8])
            low, high = pred <= low_cut, pred >= high_cut
            curves = [(f"highest fifth of predictions (n={high.sum()})", beats[high].mean(axis=0),
                       {"color": style.VERMILLION, "linewidth": 1.4}),
                      (f"lowest fifth (n={low.sum()})", beats[low].mean(axis=0),
                       {"color": style.BLACK, "linestyle": "--", "linewidth": 1})]
            plots.append(Plot(f"median_beats_predicted_{slug}", f"Median beats by prediction, {run.label}",
                              f"Average median beat of the lowest and highest fifth of {column}.",
                              beat_grid(time_ms, leads, curves, f"{run.label}: lowest vs highest predicted")))
    return plots


# --- explanations -----------------------------------------------------------------------------------------------

def clinical_beeswarm(feature_names: list[str], attributions: np.ndarray, values: np.ndarray, title: str,
                      units: str = "raw output") -> Figure:
    """Attribution of each clinical input per participant (points jittered vertically, coloured by the
    encoded input value), features ordered by mean |attribution|: the layout of a SHAP summary plot."""
    order = np.argsort(np.abs(attributions).mean(axis=0))
    fig = style.new_figure(6.0, 0.32 * len(order) + 1.4)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    mappable = None
    for row, j in enumerate(order):
        jitter = rng.uniform(-0.3, 0.3, len(attributions))
        v = values[:, j]
        span = np.ptp(v) or 1.0
        mappable = ax.scatter(attributions[:, j], row + jitter, c=(v - v.min()) / span, cmap="viridis", s=8,
                              vmin=0, vmax=1, linewidths=0, rasterized=attributions.size > RASTER_ABOVE)
    ax.axvline(0, color=style.GREY, linewidth=0.6)
    ax.set_yticks(range(len(order)), [feature_names[j] for j in order])
    ax.set_xlabel(f"attribution to the model output ({units}; integrated gradients)")
    ax.set_title(title)
    fig.colorbar(mappable, ax=ax, label="input value (low → high)", shrink=0.8)
    return fig


def attribution_over_time(time_ms: np.ndarray, leads: list[str], mean_abs: np.ndarray, title: str) -> Figure:
    """Mean |attribution| over time per lead ([leads, samples]) as a heat map: where in the beat the model looks."""
    fig = style.new_figure(7.0, 0.25 * len(leads) + 1.6)
    ax = fig.add_subplot()
    step = time_ms[1] - time_ms[0]
    image = ax.imshow(mean_abs, aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(time_ms[0] - step / 2, time_ms[-1] + step / 2, len(leads) - 0.5, -0.5))
    ax.set_yticks(range(len(leads)), leads)
    ax.axvline(0, color="white", linestyle=":", linewidth=0.8)
    ax.set_xlabel("time from R peak (ms)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="mean |attribution|")
    return fig


def cam_plot(time_ms: np.ndarray, beat: np.ndarray, cams: list[tuple[str, np.ndarray]], lead: str,
             title: str, units: str = "raw output") -> Figure:
    """Class activation maps (contribution per time point of the last feature map, upsampled) under lead
    ``lead`` of the average median beat."""
    fig = style.new_figure(6.0, 3.6)
    ax, cam_ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1])
    ax.plot(time_ms, beat, color=style.BLACK, linewidth=1)
    ax.set_ylabel(f"lead {lead} (mV)")
    ax.set_title(title)
    for i, (name, cam) in enumerate(cams):
        cam_ax.plot(time_ms, cam, color=style.CYCLE[i], linestyle=style.LINESTYLES[i], label=name)
    cam_ax.axhline(0, color=style.GREY, linewidth=0.5)
    cam_ax.set_ylabel("CAM")
    cam_ax.set_xlabel("time from R peak (ms)")
    cam_ax.legend(frameon=False, fontsize=7, title=f"units: {units}", title_fontsize=7)
    return fig


SANITY_NOTE = ("Warning: this map failed the model-randomisation check (Adebayo et al. 2018): on a model with "
               "randomly re-initialised weights it stays rank-correlated with the trained model's map (median "
               "{value:.2f}), so it shows the input or the baseline more than what the model learned.")


def randomisation_plot(check: dict, title: str) -> Figure:
    """Median (quartiles as error bars) rank correlation between each map on the trained model and on the model
    randomised from the output down, per cascade stage (Adebayo et al., NeurIPS 2018)."""
    fig = style.new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    stages = check["stages"]
    x = np.arange(len(stages))
    bound = check.get("max_correlation", 0.3)
    ax.axhspan(-bound, bound, color=style.GREY, alpha=0.15, linewidth=0, label=f"|r| < {bound:g}: passes")
    ax.axhline(0, color=style.GREY, linewidth=0.6, linestyle=":")
    for i, (name, m) in enumerate(check["maps"].items()):
        median, q1, q3 = (np.asarray(m[k], dtype=float) for k in ("median", "q1", "q3"))
        verdict = "passes" if m["passes"] else "FAILS"
        ax.errorbar(x + 0.06 * (i - 1), median, yerr=[median - q1, q3 - median], color=style.CYCLE[i],
                    linestyle=style.LINESTYLES[i], marker=style.MARKERS[i], capsize=2, label=f"{name}: {verdict}")
    ax.set_xticks(x, stages, rotation=15, ha="right")
    ax.set_ylim(-1.02, 1.02)
    ax.set_xlabel("layers re-initialised (from the output down, cumulatively)")
    ax.set_ylabel("Spearman r, trained vs randomised map")
    ax.set_title(f"{title}: model-randomisation check (n = {check['n']})")
    ax.legend(frameon=False, fontsize=7, loc="lower left")
    return fig


def explanation_plots(run: RunData) -> list[Plot]:
    """The figures of an ``aiecg explain`` folder, re-drawn from its saved attributions."""
    info = run.explain or {}
    path = run.path / info.get("attributions", "attributions.npz")
    if not path.exists():
        return [Plot("explain_missing", f"Explanations, {run.label}", "", notes=[f"{path.name} not found"])]
    data = np.load(path, allow_pickle=False)
    leads, features = list(data["leads"]), list(data["features"])
    time_ms, plots = data["time_ms"], []
    slug = "".join(c if c.isalnum() else "_" for c in run.label)
    units = info.get("output_units", "raw output")
    title = f"{info.get('model', run.label)} on {info.get('cohort_name', run.path.name)}"
    delta = info.get("convergence_delta", {})
    note = (f"Integrated gradients ({info.get('n_steps')} steps) from an all-zero ECG and the clinical baseline; "
            f"convergence delta |sum of attributions - (output - baseline output)|: median "
            f"{delta.get('median_abs', np.nan):.2g}, max {delta.get('max_abs', np.nan):.2g} ({units}; the mean "
            f"|output - baseline output| is {delta.get('mean_abs_output_change', np.nan):.2g}).")
    check = info.get("randomisation_check") or {}
    failing = {name: m["median"][-1] for name, m in check.get("maps", {}).items() if not m.get("passes", True)}

    def warn(name: str) -> list[str]:
        return [SANITY_NOTE.format(value=failing[name])] if name in failing else []

    if check:
        plots.append(Plot(f"explain_sanity_{slug}", "Sanity check of the maps (model randomisation)",
                          f"{check.get('method', '')}. One point per stage: the median over {check['n']} "
                          "participants, bars: quartiles. A map that explains the model must lose its correlation "
                          "with the trained map once the weights are random (inside the grey band); one that keeps "
                          "it mirrors the input or the baseline.",
                          randomisation_plot(check, title),
                          notes=[f"{name} fails the check (median r = {value:.2f} with the fully randomised model)"
                                 for name, value in failing.items()]))
    else:
        plots.append(Plot(f"explain_sanity_{slug}", "Sanity check of the maps (model randomisation)", "",
                          notes=["explain.json holds no randomisation check (written by an older aiecg explain, or "
                                 "with --sanity-participants 0): the maps below are unchecked"]))
    if len(features):
        plots.append(Plot(f"explain_clinical_{slug}", "Clinical-variable attributions",
                          note + " One point per participant; colour: the encoded input value. A participant "
                          "whose value equals the baseline (the training median or mode) gets zero attribution.",
                          clinical_beeswarm(features, data["meta_attr"], data["meta"], title, units)))
    mean_abs = np.abs(data["ecg_attr"]).mean(axis=0)
    plots.append(Plot(f"explain_time_{slug}", "Where in the beat the model looks",
                      note + " Mean |attribution| per lead and time point over participants.",
                      attribution_over_time(time_ms, leads, mean_abs, title),
                      notes=warn("|integrated gradients|")))
    for group in ("low", "high"):
        key = f"typical_{group}"
        if key in data.files:
            index = data[key]
            plots.append(Plot(f"explain_beats_{group}_{slug}", f"Attribution on the median beat, {group} prediction",
                              note + f" Participant {data['ids'][index]} (prediction near the median of the "
                              f"{'lowest' if group == 'low' else 'highest'} fifth); red: pushes the output up, blue: "
                              "down; larger dots: larger |attribution|.",
                              beat_grid(time_ms, leads, [("beat", data["ecg"][index], {})],
                                        f"{title}: participant {data['ids'][index]}",
                                        colour_by=data["ecg_attr"][index], colour_label=f"attribution ({units})"),
                              notes=warn("integrated gradients (signed)") + warn("|integrated gradients|")))
    if "cam" in data.files:
        cam = data["cam"]
        pred = data["outputs"]
        low, high = pred <= np.quantile(pred, 0.2), pred >= np.quantile(pred, 0.8)
        lead = "V5" if "V5" in leads else leads[0]
        k = leads.index(lead)
        plots.append(Plot(f"explain_cam_{slug}", "Class activation maps (FCN)",
                          "Exact decomposition of the ECG part of the output over time (the FCN's global average "
                          "pooling is a mean over time, and the head is linear at each participant's activation "
                          "pattern), averaged over the lowest and highest fifth of predictions.",
                          cam_plot(time_ms, data["ecg"].mean(axis=0)[k],
                                   [("highest fifth", cam[high].mean(axis=0)), ("lowest fifth", cam[low].mean(axis=0))],
                                   lead, title, units),
                          notes=warn("class activation map")))
    return plots
