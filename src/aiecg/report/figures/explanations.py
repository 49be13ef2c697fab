"""The figures of an ``aiecg explain`` folder, drawn from its saved attributions and summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from aiecg.csvfile import read_csv
from aiecg.report import style
from aiecg.report.figures.base import (
    RASTER_ABOVE,
    Plot,
)
from aiecg.report.figures.beats import beat_grid
from aiecg.report.runs import EXPLAIN_ARRAYS, RunData, load_npz


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
    ax.set_yticks(range(len(order)), [style.clinical_name(feature_names[j]) for j in order])
    ax.set_xlabel(f"attribution to the model output ({units}; integrated gradients)")
    ax.set_title(title)
    fig.colorbar(mappable, ax=ax, label="input value (low → high)", shrink=0.8)
    return fig


def attribution_over_time(time_ms: np.ndarray, leads: list[str], mean_signed: np.ndarray, title: str,
                          units: str = "raw output") -> Figure:
    """Mean signed attribution over participants per lead and time point ([leads, samples]) as a heat map on a
    symmetric diverging scale: where in the beat the model's output is pushed up (red) or down (blue)."""
    fig = style.new_figure(7.0, 0.25 * len(leads) + 1.6)
    ax = fig.add_subplot()
    step = time_ms[1] - time_ms[0]
    limit = float(np.nanmax(np.abs(mean_signed))) or 1.0
    image = ax.imshow(mean_signed, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                      extent=(time_ms[0] - step / 2, time_ms[-1] + step / 2, len(leads) - 0.5, -0.5))
    ax.set_yticks(range(len(leads)), leads)
    ax.axvline(0, color=style.BLACK, linestyle=":", linewidth=0.8)
    ax.set_xlabel("time from R peak (ms)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=f"mean attribution ({units})")
    return fig


def wave_series(waves: pd.DataFrame) -> tuple[str, tuple[tuple[str, str, str, str, str], ...]]:
    """What the wave figure draws: the share of |net contribution| (``net_share``, which passes the randomisation
    check) where ``waves.csv`` has it, else (files of an older aiecg explain) the share of |attribution|; each as
    (estimate, low, high, label, colour) for the trained model, the fully randomised model and the synthetic truth."""
    if "net_share" in waves:
        trained, randomised = ("net_share", "net_share_low", "net_share_high"), ("random_net_share",
                                                                                "random_net_low", "random_net_high")
        quantity = "|net contribution|"
    else:
        trained, randomised = ("share", "share_low", "share_high"), ("random_share", "random_low", "random_high")
        quantity = "|attribution|"
    return quantity, ((*trained, "trained model", style.BLUE),
                      (*randomised, "fully randomised model (sanity sample)", style.GREY),
                      ("truth_share", "truth_low", "truth_high", "generator's mass effect (synthetic truth)",
                       style.VERMILLION))


def wave_plot(waves: pd.DataFrame, title: str) -> Figure:
    """Share of |net contribution| per wave over all leads (mean over participants, bootstrap 95% intervals), beside
    the same share for the fully randomised model and, on synthetic data, the generator's own mass effect; and the
    trained model's share per lead and wave, signed by the direction of the mean contribution."""
    quantity, series = wave_series(waves)
    fig = style.new_figure(9.0, 4.2)
    ax, heat = fig.subplots(1, 2, width_ratios=[1.1, 1])
    overall = waves[waves["lead"] == "all"].set_index("wave")
    names = [w for w in ("P", "QRS", "ST-T", "outside") if w in overall.index]
    x = np.arange(len(names))
    shown = [s for s in series if s[0] in overall and overall[s[0]].notna().any()]
    width = 0.8 / max(len(shown), 1)
    for i, (est, low, high, label, colour) in enumerate(shown):
        values = overall.loc[names, [est, low, high]].to_numpy(float)
        offset = (i - (len(shown) - 1) / 2) * width
        ax.bar(x + offset, values[:, 0], width, color=colour, alpha=0.75, label=label, edgecolor=style.BLACK,
               linewidth=0.4, hatch=("", "//", "..")[i])
        ax.errorbar(x + offset, values[:, 0], yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]],
                    fmt="none", color=style.BLACK, capsize=2, linewidth=0.8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"share of {quantity} (or of |mass effect|)")
    ax.set_title("all leads")
    ax.legend(frameon=False, fontsize=7, loc="upper right")
    per_lead = waves[(waves["lead"] != "all") & (waves["wave"] != "outside")]
    leads = list(dict.fromkeys(per_lead["lead"]))
    column = shown[0][0] if shown else "share"
    matrix = per_lead.pivot(index="lead", columns="wave", values=column).loc[leads, ["P", "QRS", "ST-T"]]
    direction = per_lead.pivot(index="lead", columns="wave", values="signed").loc[leads, ["P", "QRS", "ST-T"]]
    percent = 100 * matrix.to_numpy(float)
    image = heat.imshow(percent, aspect="auto", cmap="Blues", vmin=0)
    for (r, c), value in np.ndenumerate(percent):
        sign = "+" if direction.iat[r, c] > 0 else "\u2212"
        heat.text(c, r, f"{value:.1f} ({sign})", ha="center", va="center", fontsize=7,
                  color="white" if value > 0.6 * np.nanmax(percent) else style.BLACK)
    heat.set_xticks(range(3), ["P", "QRS", "ST-T"])
    heat.set_yticks(range(len(leads)), leads)
    heat.set_title(f"trained model, % of {quantity} per lead and wave\n(sign: direction of the mean contribution)",
                   fontsize=9)
    fig.colorbar(image, ax=heat, shrink=0.8, label=f"% of the participant's {quantity}")
    fig.suptitle(title, fontsize=10)
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
    fig = style.new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    stages = check["stages"]
    x = np.arange(len(stages))
    bound = check.get("max_correlation", 0.3)
    ax.axhspan(-bound, bound, color=style.GREY, alpha=0.15, linewidth=0, label=f"|r| < {bound:g}: passes")
    ax.axhline(0, color=style.GREY, linewidth=0.6, linestyle=":")
    drawn = check.get("drawn", [name for name in check["maps"] if not name.startswith("|")])
    for i, (name, m) in enumerate(check["maps"].items()):
        median, q1, q3 = (np.asarray(m[k], dtype=float) for k in ("median", "q1", "q3"))
        verdict = ("passes" if m["passes"] else "FAILS") + ("" if name in drawn else " (reference, not drawn)")
        ax.errorbar(x + 0.06 * (i - 1.5), median, yerr=[median - q1, q3 - median], color=style.CYCLE[i],
                    linestyle=style.LINESTYLES[i], marker=style.MARKERS[i], capsize=2, label=f"{name}: {verdict}")
    ax.set_xticks(x, stages, rotation=15, ha="right")
    ax.set_ylim(-1.02, 1.02)
    ax.set_xlabel("layers re-initialised (from the output down, cumulatively)")
    ax.set_ylabel("Spearman r: trained vs randomised")
    ax.set_title(f"{title}: model-randomisation check (n = {check['n']})")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False, fontsize=7)
    return fig


def drawn_maps(check: dict, waves: pd.DataFrame | None) -> list[str]:
    """The checked maps that figures of the report draw: the check's ``drawn``; for an older explain, which does not
    list them, the signed maps, and |integrated gradients| too where its ``waves.csv`` has no net contributions
    (its wave figure then draws shares of |attribution|)."""
    if "drawn" in check:
        return list(check["drawn"])
    magnitude = waves is not None and wave_series(waves)[0] == "|attribution|"
    return [name for name in check.get("maps", {}) if magnitude or not name.startswith("|")]


def explanation_plots(run: RunData) -> list[Plot]:
    """The figures of an ``aiecg explain`` folder, re-drawn from its saved attributions."""
    info = run.explain or {}
    path = run.path / info.get("attributions", "attributions.npz")
    if not path.exists():
        return [Plot("explain_missing", f"Explanations, {run.label}", "", notes=[f"{path.name} not found"])]
    data = load_npz(path, EXPLAIN_ARRAYS)
    leads, features = list(data["leads"]), list(data["features"])
    time_ms, plots = data["time_ms"], []
    slug = "".join(c if c.isalnum() else "_" for c in run.label)
    units = style.readable(info.get("output_units", "raw output"))
    title = style.readable(f"{info.get('model', run.label)} on {info.get('cohort_name', run.path.name)}")
    delta = info.get("convergence_delta", {})
    baseline = (info.get("baselines") or {}).get("ecg")
    if isinstance(baseline, dict):
        start = (f"from the mean median beat of the participant's sex ({baseline.get('source')}: "
                 f"{baseline.get('n_women')} women, {baseline.get('n_men')} men; {baseline.get('reference')})")
    else:
        start = "from an all-zero ECG"
    note = (f"Integrated gradients ({info.get('n_steps')} steps) {start} and the clinical baseline; "
            f"convergence delta |sum of attributions - (output - baseline output)|: median "
            f"{delta.get('median_abs', np.nan):.2g}, max {delta.get('max_abs', np.nan):.2g} ({units}; the mean "
            f"|output - baseline output| is {delta.get('mean_abs_output_change', np.nan):.2g}).")
    check = info.get("randomisation_check") or {}
    waves_path = run.path / (info.get("waves") or {}).get("file", "waves.csv")
    waves = read_csv(waves_path) if waves_path.exists() else None
    if check:
        check = {**check, "drawn": drawn_maps(check, waves)}
    drawn = check.get("drawn", [])
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
                                 + ("" if name in drawn else ": expected of a magnitude, which follows |input - "
                                    "baseline| whatever the weights are; no figure of this report draws it")
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
    plots.append(Plot(f"explain_time_{slug}", "Where in the beat the model looks (signed)",
                      note + " Mean signed attribution per lead and time point over participants; red: pushes the "
                      "output up, blue: down.",
                      attribution_over_time(time_ms, leads, data["ecg_attr"].mean(axis=0), title, units),
                      notes=warn("integrated gradients (signed)")))
    if waves is not None:
        truth = "truth_share" in waves and waves["truth_share"].notna().any()
        quantity, _ = wave_series(waves)
        net = quantity == "|net contribution|"
        what = ("net contribution (the signed sum of its attribution; by the completeness of integrated gradients "
                "all of them add up to the output minus the baseline's)" if net else "|attribution|")
        plots.append(Plot(f"explain_waves_{slug}", "Attribution by wave and lead",
                          f"Each wave's and lead's {what}, as a share of the participant's total {quantity}, cut "
                          "at the participant's own measured fiducials (P wave, QRS, ST-T or outside them); bars: "
                          "mean over participants, error bars: bootstrap 95% intervals (waves.csv). Grey: the same "
                          "for the fully randomised model of the sanity check (what the input and baseline alone "
                          "give); a trained model's share close to it says little about the model."
                          + (" Vermilion: the share of the generator's own mass effect (|beat at the participant's "
                             "mass - beat at mean mass|, all else fixed), the truth of the synthetic cohort."
                             if truth else ""),
                          wave_plot(waves, title),
                          notes=warn("wave contributions (signed, per lead and wave)" if net else
                                     "|integrated gradients|")))
    examples = [(key, group) for key, group in (("typical_low", "low"), ("typical_high", "high"), ("single", "one"))
                if key in data.files]
    limit = max((float(np.abs(data["ecg_attr"][int(data[key])]).max()) for key, _ in examples), default=None)
    for key, group in examples:
        index = int(data[key])
        output = float(data["outputs"][index])
        which = ("the ECG explained" if group == "one" else
                 f"prediction near the median of the {'lowest' if group == 'low' else 'highest'} fifth")
        plots.append(Plot(f"explain_beats_{group}_{slug}",
                          "Attribution on the median beat" + ("" if group == "one" else f", {group} prediction"),
                          note + f" Participant {data['ids'][index]} ({which}); red: pushes the output up, blue: "
                          "down; larger dots: larger |attribution|."
                          + (" Both examples share one colour scale." if len(examples) > 1 else ""),
                          beat_grid(time_ms, leads, [("beat", data["ecg"][index], {})],
                                    f"{title}\nparticipant {data['ids'][index]}, output {output:.2f} ({units})",
                                    colour_by=data["ecg_attr"][index], colour_label=f"attribution ({units})",
                                    colour_limit=limit),
                          notes=warn("integrated gradients (signed)")))
    if "cam" in data.files:
        cam = data["cam"]
        pred = data["outputs"]
        low, high = pred <= np.quantile(pred, 0.2), pred >= np.quantile(pred, 0.8)
        series = ([("the ECG explained", cam[0])] if len(pred) == 1 else
                  [("highest fifth", cam[high].mean(axis=0)), ("lowest fifth", cam[low].mean(axis=0))])
        lead = "V5" if "V5" in leads else leads[0]
        k = leads.index(lead)
        plots.append(Plot(f"explain_cam_{slug}", "Class activation maps (FCN)",
                          "Exact decomposition of the ECG part of the output over time (the FCN's global average "
                          "pooling is a mean over time, and the head is linear at each participant's activation "
                          "pattern), averaged over the lowest and highest fifth of predictions.",
                          cam_plot(time_ms, data["ecg"].mean(axis=0)[k], series, lead, title, units),
                          notes=warn("class activation map")))
    return plots
