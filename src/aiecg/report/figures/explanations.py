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
                          units: str = "raw output", strip: bool = False) -> Figure:
    """Mean signed attribution over participants per lead and time point ([leads, samples]) as a heat map on a
    symmetric diverging scale: where in the beat (with ``strip``: in the rhythm strip, time from its start) the
    model's output is pushed up (red) or down (blue)."""
    fig = style.new_figure(7.0, 0.25 * len(leads) + 1.6)
    ax = fig.add_subplot()
    step = time_ms[1] - time_ms[0]
    limit = float(np.nanmax(np.abs(mean_signed))) or 1.0
    image = ax.imshow(mean_signed, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                      extent=(time_ms[0] - step / 2, time_ms[-1] + step / 2, len(leads) - 0.5, -0.5))
    ax.set_yticks(range(len(leads)), leads)
    if not strip:
        ax.axvline(0, color=style.BLACK, linestyle=":", linewidth=0.8)
    ax.set_xlabel("time from the strip start (ms)" if strip else "time from R peak (ms)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=f"{'attribution' if strip else 'mean attribution'} ({units})")
    return fig


def lead_summary_plot(leads: list[str], attributions: np.ndarray, title: str) -> Figure:
    """Share of each participant's |attribution| (all samples) that falls in each lead ([n, leads, samples]):
    mean over participants with the interquartile range, the per-lead summary of a rhythm-strip model."""
    total = np.abs(attributions).sum(axis=(1, 2), keepdims=True)[:, :, 0]
    share = np.abs(attributions).sum(axis=2) / np.where(total > 0, total, 1.0)
    fig = style.new_figure(6.0, 3.2)
    ax = fig.add_subplot()
    q1, q3 = np.quantile(share, 0.25, axis=0), np.quantile(share, 0.75, axis=0)
    mean = share.mean(axis=0)
    ax.bar(range(len(leads)), mean, color=style.BLUE)
    ax.errorbar(range(len(leads)), mean, yerr=[mean - np.minimum(q1, mean), np.maximum(q3, mean) - mean],
                fmt="none", ecolor=style.BLACK, linewidth=0.8, capsize=2)
    ax.axhline(1.0 / len(leads), color=style.GREY, linestyle=":", linewidth=0.8)
    ax.set_xticks(range(len(leads)), leads)
    ax.set_ylabel("share of |attribution|")
    ax.set_title(title)
    return fig


WAVE_SERIES = (("share", "share_low", "share_high", "trained model", style.BLUE),
               ("random_share", "random_low", "random_high", "fully randomised model (sanity sample)", style.GREY),
               ("truth_share", "truth_low", "truth_high", "generator's mass effect (synthetic truth)",
                style.VERMILLION))


def wave_plot(waves: pd.DataFrame, title: str) -> Figure:
    """Share of |attribution| per wave over all leads (mean over participants, bootstrap 95% intervals), beside the
    same share for the fully randomised model and, on synthetic data, the generator's own mass effect; and the
    trained model's share per lead and wave."""
    fig = style.new_figure(9.0, 4.2)
    ax, heat = fig.subplots(1, 2, width_ratios=[1.1, 1])
    overall = waves[waves["lead"] == "all"].set_index("wave")
    names = [w for w in ("P", "QRS", "ST-T", "outside") if w in overall.index]
    x = np.arange(len(names))
    shown = [s for s in WAVE_SERIES if s[0] in overall and overall[s[0]].notna().any()]
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
    ax.set_ylabel("share of |attribution| (or of |mass effect|)")
    ax.set_title("all leads")
    ax.legend(frameon=False, fontsize=7, loc="upper right")
    per_lead = waves[(waves["lead"] != "all") & (waves["wave"] != "outside")]
    leads = list(dict.fromkeys(per_lead["lead"]))
    matrix = per_lead.pivot(index="lead", columns="wave", values="share").loc[leads, ["P", "QRS", "ST-T"]]
    percent = 100 * matrix.to_numpy(float)
    image = heat.imshow(percent, aspect="auto", cmap="Blues", vmin=0)
    for (r, c), value in np.ndenumerate(percent):
        heat.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7,
                  color="white" if value > 0.6 * np.nanmax(percent) else style.BLACK)
    heat.set_xticks(range(3), ["P", "QRS", "ST-T"])
    heat.set_yticks(range(len(leads)), leads)
    heat.set_title("trained model, % of |attribution| per lead and wave")
    fig.colorbar(image, ax=heat, shrink=0.8, label="% of the participant's |attribution|")
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
    for i, (name, m) in enumerate(check["maps"].items()):
        median, q1, q3 = (np.asarray(m[k], dtype=float) for k in ("median", "q1", "q3"))
        verdict = "passes" if m["passes"] else "FAILS"
        ax.errorbar(x + 0.06 * (i - 1), median, yerr=[median - q1, q3 - median], color=style.CYCLE[i],
                    linestyle=style.LINESTYLES[i], marker=style.MARKERS[i], capsize=2, label=f"{name}: {verdict}")
    ax.set_xticks(x, stages, rotation=15, ha="right")
    ax.set_ylim(-1.02, 1.02)
    ax.set_xlabel("layers re-initialised (from the output down, cumulatively)")
    ax.set_ylabel("Spearman r: trained vs randomised")
    ax.set_title(f"{title}: model-randomisation check (n = {check['n']})")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False, fontsize=7)
    return fig


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
    strip = info.get("input", "median") == "rhythm"
    if isinstance(baseline, dict):
        start = (f"from the mean {'rhythm strip' if strip else 'median beat'} of the participant's sex "
                 f"({baseline.get('source')}: "
                 f"{baseline.get('n_women')} women, {baseline.get('n_men')} men; {baseline.get('reference')})")
    else:
        start = "from an all-zero ECG"
    note = (f"Integrated gradients ({info.get('n_steps')} steps) {start} and the clinical baseline; "
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
    if strip:  # unaligned strips: no mean over participants in time; the per-lead summary and one strip instead
        plots += _strip_plots(data, leads, title, units, note, slug, warn)
        return plots
    plots.append(Plot(f"explain_time_{slug}", "Where in the beat the model looks (signed)",
                      note + " Mean signed attribution per lead and time point over participants; red: pushes the "
                      "output up, blue: down.",
                      attribution_over_time(time_ms, leads, data["ecg_attr"].mean(axis=0), title, units),
                      notes=warn("integrated gradients (signed)")))
    waves_path = run.path / (info.get("waves") or {}).get("file", "waves.csv")
    if waves_path.exists():
        waves = read_csv(waves_path)
        truth = "truth_share" in waves and waves["truth_share"].notna().any()
        plots.append(Plot(f"explain_waves_{slug}", "Attribution by wave and lead",
                          "Share of each participant's |attribution| (all leads and samples) that falls in the P "
                          "wave, QRS, ST-T or outside them, cut at the participant's own measured fiducials; bars: "
                          "mean over participants, error bars: bootstrap 95% intervals (waves.csv). Grey: the same "
                          "for the fully randomised model of the sanity check (what the input and baseline alone "
                          "give); a trained model's share close to it says little about the model."
                          + (" Vermilion: the share of the generator's own mass effect (|beat at the participant's "
                             "mass - beat at mean mass|, all else fixed), the truth of the synthetic cohort."
                             if truth else ""),
                          wave_plot(waves, title), notes=warn("|integrated gradients|")))
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


def _strip_plots(data: dict, leads: list[str], title: str, units: str, note: str, slug: str, warn) -> list[Plot]:
    """The figures of a rhythm-strip model: attribution by lead over participants, and where in the strip the
    model looks for the participant with a typical high prediction (or the one ECG explained)."""
    plots = [Plot(f"explain_leads_{slug}", "Attribution by lead (rhythm strip)",
                  note + " Share of each participant's |attribution| (all samples of the 10 s strip) in each lead; "
                  "bars: mean over participants, error bars: interquartile range; dotted: an equal share per lead.",
                  lead_summary_plot(leads, data["ecg_attr"], title),
                  notes=warn("|integrated gradients|"))]
    key = "single" if "single" in data.files else "typical_high"
    index = int(data[key])
    plots.append(Plot(f"explain_strip_{slug}", "Where in the strip the model looks (signed)",
                      note + f" Participant {data['ids'][index]} ("
                      + ("the ECG explained" if key == "single" else "prediction near the median of the highest fifth")
                      + "); red: pushes the output up, blue: down.",
                      attribution_over_time(data["time_ms"], leads, data["ecg_attr"][index],
                                            f"{title}\nparticipant {data['ids'][index]}, output "
                                            f"{float(data['outputs'][index]):.2f} ({units})", units, strip=True),
                      notes=warn("integrated gradients (signed)")))
    return plots
