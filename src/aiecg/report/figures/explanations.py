"""The figures of an ``aiecg explain`` folder, drawn from its saved attributions and summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from aiecg.csvfile import read_csv
from aiecg.report import style
from aiecg.report.figures.base import (
    LEAD_ORDER,
    RASTER_ABOVE,
    Plot,
)
from aiecg.report.figures.beats import beat_grid
from aiecg.report.runs import EXPLAIN_ARRAYS, NpzArrays, RunData, load_npz
from aiecg.signal.leads import DERIVED_LIMB_LEADS, derive_limb_leads


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
    """Each lead's share of the participant's total |net contribution| (the lead's attribution summed over the
    strip, in absolute value; [n, leads, samples]): mean over participants with the interquartile range, the
    per-lead summary of a rhythm-strip model. Net contributions, not |attribution|, because magnitudes follow
    |input - baseline| whatever the model (the randomisation check's ``lead contributions`` map)."""
    net = np.abs(attributions.astype(np.float64).sum(axis=2))
    total = net.sum(axis=1, keepdims=True)
    share = net / np.where(total > 0, total, 1.0)
    fig = style.new_figure(6.0, 3.2)
    ax = fig.add_subplot()
    q1, q3 = np.quantile(share, 0.25, axis=0), np.quantile(share, 0.75, axis=0)
    mean = share.mean(axis=0)
    ax.bar(range(len(leads)), mean, color=style.BLUE)
    ax.errorbar(range(len(leads)), mean, yerr=[mean - np.minimum(q1, mean), np.maximum(q3, mean) - mean],
                fmt="none", ecolor=style.BLACK, linewidth=0.8, capsize=2)
    ax.axhline(1.0 / len(leads), color=style.GREY, linestyle=":", linewidth=0.8)
    ax.set_xticks(range(len(leads)), leads)
    ax.set_ylabel("share of |net contribution|")
    ax.set_title(title)
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
    column = series[0][0]  # the trained model's share, whatever else is drawn (NaN cells stay empty)
    matrix = per_lead.pivot(index="lead", columns="wave", values=column).loc[leads, ["P", "QRS", "ST-T"]]
    direction = per_lead.pivot(index="lead", columns="wave", values="signed").loc[leads, ["P", "QRS", "ST-T"]]
    percent = 100 * matrix.to_numpy(float)
    image = heat.imshow(percent, aspect="auto", cmap="Blues", vmin=0)
    for (r, c), value in np.ndenumerate(percent):
        mean = direction.iat[r, c]
        sign = "+" if mean > 0 else "\u2212" if mean < 0 else "0" if mean == 0 else "n/a"
        heat.text(c, r, f"{value:.1f} ({sign})", ha="center", va="center", fontsize=7,
                  color="white" if value > 0.6 * np.nanmax(percent) else style.BLACK)
    heat.set_xticks(range(3), ["P", "QRS", "ST-T"])
    heat.set_yticks(range(len(leads)), leads)
    heat.set_title(f"trained model, % of {quantity} per lead and wave\n(sign: direction of the mean contribution)",
                   fontsize=9)
    fig.colorbar(image, ax=heat, shrink=0.8, label=f"% of the participant's {quantity}")
    fig.suptitle(title, fontsize=10)
    return fig


def value_text(data, index: int, target: dict) -> str:
    """``predicted 52.3 g/m², CMR 48.1 g/m²`` (LVH: the probability, and LVH or no LVH by CMR) for one explained
    participant, from the arrays ``aiecg explain`` saves (``predicted``, ``true``); empty for an older folder."""
    if "predicted" not in data.files:
        return ""
    predicted, true = float(data["predicted"][index]), float(data["true"][index])
    if target.get("kind") == "binary":
        reference = "not given" if not np.isfinite(true) else ("LVH" if true >= 0.5 else "no LVH")
        return f"predicted LVH probability {predicted:.2f}, CMR: {reference}"
    unit = style.UNITS.get(target.get("stem", ""), "")
    reference = f"{true:.1f} {unit}" if np.isfinite(true) else "not given"
    return f"predicted {predicted:.1f} {unit}, CMR {reference}".replace("  ", " ")


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
    kind = info.get("input", "median")
    strip = kind == "rhythm"
    if isinstance(baseline, dict):
        what = {"rhythm": "rhythm strip", "both": "median beat and rhythm strip"}.get(kind, "median beat")
        start = (f"from the mean {what} of the participant's sex "
                 f"({baseline.get('source')}: "
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
    if strip:  # unaligned strips: no mean over participants in time; the per-lead summary and one strip instead
        plots += _strip_plots(data, leads, title, units, note, slug, warn)
        return plots
    if "median_samples" in data.files:  # both inputs: the strip's figures, then the beat's from its own part
        beat_part, strip_part = input_parts(data)
        shares = (info.get("inputs") or {}).get("net_contribution_share") or {}
        split = " ".join(f"The {name} carries {v[0]:.0%} (95% CI {v[1]:.0%} to {v[2]:.0%}) of the mean |net "
                         "contribution|." for name, v in shares.items() if len(v) == 3)
        note = f"{note} One model reads the median beat and the rhythm strip; {split}".strip()
        plots += _strip_plots(strip_part, leads, title, units, note, slug, warn)
        data = beat_part
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
                             "mass - beat at mean mass|, all else fixed), the truth of the synthetic cohort: where "
                             "the mass changes the signal, a different quantity from where the model draws its "
                             "output, so the two need not agree even for a perfect model."
                             if truth else ""),
                          wave_plot(waves, title),
                          notes=warn("wave contributions (signed, per lead and wave)" if net else
                                     "|integrated gradients|")))
    examples = [(key, group) for key, group in (("typical_low", "low"), ("typical_high", "high"), ("single", "one"))
                if key in data.files]
    target = info.get("target") or {}
    # one colour scale for every example: the largest |attribution| of any of them
    limit = max((float(np.abs(data["ecg_attr"][int(data[key])]).max()) for key, _ in examples), default=None)
    for key, group in examples:
        index = int(data[key])
        output = float(data["outputs"][index])
        which = ("the ECG explained" if group == "one" else
                 f"prediction near the median of the {'lowest' if group == 'low' else 'highest'} fifth")
        plots.append(Plot(f"explain_beats_{group}_{slug}",
                          "Attribution on the median beat" + ("" if group == "one" else f", {group} prediction"),
                          note + f" Participant {data['ids'][index]} ({which}); the title gives the model's "
                          "prediction and the CMR reference value. Red: pushes the output up, blue: down; larger dots: "
                          "larger |attribution|."
                          + (f" Both examples share one colour scale (± {limit:.2g} {units})." if len(examples) > 1
                             else ""),
                          beat_grid(time_ms, leads, [("beat", data["ecg"][index], {})],
                                    f"{title}\nparticipant {data['ids'][index]}: "
                                    + (value_text(data, index, target) or f"output {output:.2f} ({units})"),
                                    colour_by=data["ecg_attr"][index], colour_label=f"attribution ({units})",
                                    colour_limit=limit),
                          notes=warn("integrated gradients (signed)")))
    if "cam" in data.files:
        plots += cam_plots(data, title, units, slug, warn("class activation map"))
    return plots


def input_parts(data) -> tuple[NpzArrays, NpzArrays]:
    """The saved arrays of a model of both inputs as two sets, the median beat's (its first ``median_samples``
    samples, time from R) and the rhythm strip's (the rest, time from the strip's start), each drawn as the
    arrays of a one-input model are."""
    m = int(data["median_samples"])
    beat, strip = NpzArrays(data), NpzArrays(data)
    for key in ("ecg", "ecg_attr", "ecg_baseline"):
        if key in data:
            beat[key], strip[key] = data[key][..., :m], data[key][..., m:]
    strip["time_ms"] = data["strip_time_ms"]
    return beat, strip


def cam_plots(data, title: str, units: str, slug: str, notes: list[str]) -> list[Plot]:
    """The class activation map drawn along every lead of the mean median beat, in the standard 12-lead layout:
    of the highest and the lowest fifth of predictions (one colour scale for both), or of the one ECG explained.
    The FCN's map is a function of time (its last feature map mixes the leads), so every lead carries the same
    colours: they show where in the beat, read against each lead's waves, the model gathers its output."""
    cam, pred, leads, time_ms = data["cam"], data["outputs"], list(data["leads"]), data["time_ms"]
    if len(pred) == 1:
        groups = [("one", "the ECG explained", np.ones(1, bool))]
    else:
        groups = [("high", "highest fifth of predictions", pred >= np.quantile(pred, 0.8)),
                  ("low", "lowest fifth of predictions", pred <= np.quantile(pred, 0.2))]
    maps = {key: cam[member].mean(axis=0) for key, _, member in groups}
    limit = max(float(np.abs(m).max()) for m in maps.values()) or 1.0
    derived = [lead for lead in DERIVED_LIMB_LEADS if lead not in leads] if {"I", "II"} <= set(leads) else []
    shown = [lead for lead in LEAD_ORDER if lead in leads or lead in derived]
    shown += [lead for lead in leads if lead not in shown]
    plots = []
    for key, label, member in groups:
        beat, names = derive_limb_leads(data["ecg"][member].mean(axis=0), leads) if derived else (
            data["ecg"][member].mean(axis=0), tuple(leads))
        beat = beat[[names.index(lead) for lead in shown]]
        plots.append(Plot(
            f"explain_cam_{key}_{slug}", f"Class activation maps (FCN), {label}",
            "Exact decomposition of the ECG part of the output over time (the FCN's global average pooling is a "
            "mean over time, and the head is linear at each participant's activation pattern), averaged over "
            f"{label} (n = {int(member.sum())}) and drawn along each lead of their mean median beat in the standard "
            "layout. The map is one function of time shared by all leads; red: pushes the output up, blue: down; "
            "larger dots: larger contribution."
            + (f" Leads {', '.join(derived)}, which the model does not read, are derived from I and II (Einthoven's "
               "and Goldberger's relations) to complete the layout." if derived else "")
            + (f" The highest and lowest fifths share one colour scale (± {limit:.2g} {units})." if len(groups) > 1
               else ""),
            beat_grid(time_ms, shown, [("mean beat", beat, {})], f"{title}\nclass activation map, {label} "
                      f"(n = {int(member.sum())})", colour_by=np.broadcast_to(maps[key], beat.shape),
                      colour_label=f"CAM ({units})", colour_limit=limit),
            notes=list(notes)))
    return plots


def _strip_plots(data: dict, leads: list[str], title: str, units: str, note: str, slug: str, warn) -> list[Plot]:
    """The figures of a rhythm-strip model: attribution by lead over participants, and where in the strip the
    model looks for the participant with a typical high prediction (or the one ECG explained)."""
    plots = [Plot(f"explain_leads_{slug}", "Attribution by lead (rhythm strip)",
                  note + " Each lead's net contribution (its attribution summed over the 10 s strip) as a share of "
                  "the participant's total |net contribution|; bars: mean over participants, error bars: "
                  "interquartile range; dotted: an equal share per lead.",
                  lead_summary_plot(leads, data["ecg_attr"], title),
                  notes=warn("lead contributions (signed, per lead)"))]
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
