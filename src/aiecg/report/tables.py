"""The report's tables as DataFrames: participant characteristics with tests, the flow of participants, every
metric with its interval, the comparison with DeLong and McNemar p-values, and a short model card.

Characteristics: continuous variables as mean (SD) with Welch's unequal-variance t-test (Welch 1947), a test of
means for a summary of means; binary and categorical ones as n (%) with Fisher's exact test for 2 x 2 tables and
Pearson's chi-squared test otherwise. P-values print in the journal convention (three decimals, ``<0.001``), in
the page and in the CSV alike; each row counts the participants whose value is missing.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from aiecg.data.cohort import IS_MALE
from aiecg.report.runs import RunData, cohort_rows
from aiecg.report.style import clinical_name

TARGET_LABELS = {"INDEXED_MASS": "indexed LV mass (g/m²)", "MASS": "LV mass (g)", "VOL": "LV EDV (mL)",
                 "INDEXED_VOL": "indexed LV EDV (mL/m²)", "MASS_VOL_RATIO": "LV mass/volume (g/mL)"}


def format_p(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _variables(run: RunData, frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column, label, kind) for the characteristics table: sex, targets, then the clinical variables."""
    out = [(IS_MALE, "male sex", "binary")]
    out += [(name, label, "continuous") for name, label in TARGET_LABELS.items() if name in frame]
    if run.cohort is not None:
        clinical = run.cohort.mapping.clinical
        out += [(c, clinical_name(c), "continuous") for c in clinical.continuous if c in frame]
        out += [(c, clinical_name(c), "binary") for c in clinical.binary if c in frame and c != "sex"]
        out += [(c, clinical_name(c), "categorical") for c in clinical.categorical if c in frame]
    return out


def compare_groups(groups: list[tuple[str, pd.DataFrame]], variables: list[tuple[str, str, str]]) -> pd.DataFrame:
    """One row per variable (one per level for categorical ones): a summary per group and the p-value.

    Args:
        groups: (name, rows) for each group; the test needs two groups.
        variables: (column, label, kind) with kind ``continuous``, ``binary`` or ``categorical``.
    """
    records = []
    for column, label, kind in variables:
        if kind == "continuous":
            values = [pd.to_numeric(g[column], errors="coerce").dropna().to_numpy(float) for _, g in groups]
            row = {"variable": label, "summary": "mean (SD)"}
            for (name, _), v in zip(groups, values):
                digits = 2 if len(v) and np.median(np.abs(v)) < 10 else 1
                row[name] = f"{np.mean(v):.{digits}f} ({np.std(v, ddof=1):.{digits}f})" if len(v) > 1 else "n/a"
            p = np.nan
            if len(values) == 2 and min(len(v) for v in values) >= 2:
                p = float(stats.ttest_ind(values[0], values[1], equal_var=False).pvalue)
            row.update(p=format_p(p), test="Welch's t" if np.isfinite(p) else "", missing=_missing(groups, column))
            records.append(row)
            continue
        columns = [g[column].dropna() for _, g in groups]
        levels = sorted(set().union(*[set(c.astype(str)) for c in columns]))
        if kind == "binary":
            levels = [lv for lv in levels if lv in ("1", "1.0", "True", "true")] or levels[-1:]
        counts = np.array([[int((c.astype(str) == lv).sum()) for lv in sorted(set().union(*[set(c.astype(str))
                                                                                             for c in columns]))]
                           for c in columns])
        p, test = np.nan, ""
        if len(groups) == 2 and counts.shape[1] >= 2:
            present = counts[:, counts.sum(axis=0) > 0]
            if present.shape == (2, 2):
                p, test = float(stats.fisher_exact(present).pvalue), "Fisher's exact"
            elif present.shape[1] > 2:
                p, test = float(stats.chi2_contingency(present).pvalue), "chi-squared"
        for k, level in enumerate(levels):
            row = {"variable": label if kind == "binary" else f"{label} = {level}", "summary": "n (%)"}
            for (name, _), c in zip(groups, columns):
                n = int((c.astype(str) == level).sum())
                row[name] = f"{n} ({100 * n / max(len(c), 1):.1f}%)"
            row.update(p=format_p(p) if k == 0 and np.isfinite(p) else "", test=test if k == 0 else "",
                       missing=_missing(groups, column) if k == 0 else "")
            records.append(row)
    header = {"variable": "n", "summary": ""}
    header.update({name: str(len(g)) for name, g in groups})
    header.update(p="", test="", missing="")
    return pd.DataFrame([header, *records])


def _missing(groups: list[tuple[str, pd.DataFrame]], column: str) -> str:
    """Participants without a value, per group: ``3 / 0``."""
    return " / ".join(str(int(g[column].isna().sum()) if column in g else len(g)) for _, g in groups)


def characteristics_by_lvh(run: RunData) -> pd.DataFrame | None:
    """LVH vs no LVH among every participant the run used."""
    frame = cohort_rows(run)
    if frame is None or "LVH" not in frame or frame["LVH"].nunique() < 2:
        return None
    lvh = frame["LVH"] == 1
    return compare_groups([("LVH", frame[lvh]), ("no LVH", frame[~lvh])], _variables(run, frame))


def characteristics_by_split(run: RunData) -> pd.DataFrame | None:
    """Table 1 by split (train, validation, test) and overall, with missing-data counts (no tests: the splits
    are random by design)."""
    frame = cohort_rows(run)
    if frame is None or not run.splits:
        return None
    groups = [(f"{name} split", cohort_rows(run, np.asarray(run.splits.get(name, []), dtype=str)))
              for name in ("train", "val", "test")]  # not 'test': that column names the statistical test
    groups.append(("overall", frame))
    table = compare_groups(groups, _variables(run, frame))
    return table.drop(columns=["p", "test"])


def characteristics_by_cohort(runs: list[RunData]) -> pd.DataFrame | None:
    """Cohort against cohort (the first two distinct cohorts among the runs; all participants each run used)."""
    seen: dict[str, tuple[RunData, pd.DataFrame]] = {}
    for run in runs:  # per cohort, the run that used the most of its participants
        frame = cohort_rows(run)
        if frame is not None and (run.cohort_name not in seen or len(frame) > len(seen[run.cohort_name][1])):
            seen[run.cohort_name] = (run, frame)
    if len(seen) < 2:
        return None
    (name_a, (run_a, a)), (name_b, (_, b)) = list(seen.items())[:2]
    if name_a == name_b:
        name_b = f"{name_b} (2)"
    shared = [v for v in _variables(run_a, a) if v[0] in b]
    if "LVH" in a and "LVH" in b:
        shared.insert(1, ("LVH", "LVH (CMR)", "binary"))
    return compare_groups([(name_a, a), (name_b, b)], shared)


def _reason_group(reason: str) -> str:
    """A short category of an exclusion reason (values, ids and lead names stripped)."""
    text = str(reason).split(";")[0]
    text = re.sub(r"\(.*?\)", "", text)
    text = re.sub(r"\blead \S+", "lead", text)
    text = re.sub(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
    text = re.sub(r"=\s*#", "", text)
    return re.sub(r"\s+", " ", text).strip(" :")


def participant_flow(run: RunData) -> pd.DataFrame | None:
    """Table rows -> cohort exclusions with reasons -> ECG QC failures -> usable -> train/val/test.

    A training run counts its splits (splits.json); an ``aiecg evaluate --split test`` folder the split sizes it
    re-created (metrics.json 'split_sizes'), marking the test split as the one evaluated; ``--split all``
    evaluated every usable participant; ``--split ids`` (or a folder without the sizes) leaves the table's total
    and the usable count unknown rather than taking the evaluated participants for them."""
    if run.exclusions is None and run.splits is None:
        return None
    exclusions = run.exclusions if run.exclusions is not None else pd.DataFrame(columns=["id", "reason"])
    reasons = exclusions["reason"].astype(str)
    ecg = reasons.str.startswith("ECG ")
    split = run.metrics.get("split")
    n_evaluated = len(run.results) if run.results is not None else 0
    sizes = run.splits and {k: len(v) for k, v in run.splits.items()}
    if not sizes and split == "test" and run.metrics.get("split_sizes"):
        sizes = {k: int(v) for k, v in run.metrics["split_sizes"].items()}
    every = not sizes and split == "all"  # evaluated every usable participant
    known = bool(sizes) or every
    used = sum(sizes.values()) if sizes else n_evaluated
    rows = [("rows in the cohort table", len(exclusions) + used if known else np.nan, "")]
    rows.append(("excluded by the cohort checks", int((~ecg).sum()), ""))
    for reason, count in reasons[~ecg].map(_reason_group).value_counts().items():
        rows.append(("", int(count), reason))
    rows.append(("excluded: ECG missing or failed QC", int(ecg.sum()), ""))
    for reason, count in reasons[ecg].map(lambda r: _reason_group(r[4:])).value_counts().items():
        rows.append(("", int(count), reason))
    if known:
        rows.append(("usable participants", used, ""))
    if sizes:
        evaluated = "" if run.splits else ("evaluated" if n_evaluated == sizes.get("test") else
                                           f"{n_evaluated} of them evaluated")
        for name in ("train", "val", "test"):
            rows.append((f"{name} split", sizes.get(name, 0), evaluated if name == "test" else ""))
    elif run.results is not None:
        rows.append(("evaluated", n_evaluated, {"all": "every usable participant", "ids": "the ids given",
                                                "test": "the test split"}.get(split, "")))
    return pd.DataFrame(rows, columns=["step", "participants", "reason"])


def _fmt(est: float, low: float, high: float, digits: int) -> str:
    if not np.isfinite(est):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


def metrics_table(run: RunData) -> pd.DataFrame:
    """Every interval in the run's test metrics: section, metric, estimate (95% CI), method."""
    records = []
    test = run.metrics.get("test", {})
    for section, block in test.items():
        if not isinstance(block, dict):
            continue
        method = block.get("bootstrap", {}).get("method", "")
        for metric, value in block.items():
            if isinstance(value, dict) and {"estimate", "low", "high"} <= set(value):
                digits = 2 if metric in ("mae", "bias", "loa_lower", "loa_upper") else 3
                records.append({
                    "section": section + (f" @ {block['threshold']:.3g}" if "threshold" in block
                                          and section != "lvh_cutoff" else ""),
                    "metric": metric, "estimate (95% CI)": _fmt(value["estimate"], value["low"], value["high"], digits),
                    "interval": "DeLong" if metric == "auroc" else f"bootstrap {method}".strip(),
                    "n": block.get("n", test.get("n")),
                })
    return pd.DataFrame(records)


def interval_coverage_table(run: RunData) -> pd.DataFrame | None:
    """Coverage and mean width of the run's conformal prediction intervals on its test participants, per output
    and level, overall and by sex (``metrics.json`` key ``conformal``; None when the run has none)."""
    conformal = run.metrics.get("conformal")
    if not conformal:
        return None
    records = []
    for stem, block in conformal.items():
        if not isinstance(block, dict) or "levels" not in block:
            continue
        for level, groups in block["levels"].items():
            for group in ("overall", "male", "female"):
                entry = groups.get(group)
                if not entry or entry.get("coverage") is None:
                    continue
                records.append({"output": stem, "level": f"{100 * float(level):g}%", "participants": group,
                                "n": entry["n"], "coverage": f"{100 * entry['coverage']:.1f}%",
                                "mean width (output units)": f"{entry['mean_width']:.1f}"})
    return pd.DataFrame(records) if records else None


def comparison_table(run: RunData) -> pd.DataFrame | None:
    """The LVH comparison with DeLong (AUROC) and McNemar (sensitivity, specificity) p-values against the
    pre-specified reference row (the model)."""
    c = run.comparison
    if c is None or not len(c):
        return None

    def p(value: float, reference: bool) -> str:
        return "reference" if reference else format_p(float(value))

    return pd.DataFrame({
        "score": c["name"], "kind": c["kind"], "n": c["n"],
        "AUROC (95% CI)": [_fmt(r.auroc, r.auroc_low, r.auroc_high, 3) for r in c.itertuples()],
        "DeLong p": [p(r.delong_p_vs_reference, r.reference) for r in c.itertuples()],
        "sensitivity (95% CI)": [_fmt(r.sensitivity, r.sensitivity_low, r.sensitivity_high, 3) for r in c.itertuples()],
        "McNemar p (sens.)": [p(r.mcnemar_sensitivity_p_vs_reference, r.reference) for r in c.itertuples()],
        "specificity (95% CI)": [_fmt(r.specificity, r.specificity_low, r.specificity_high, 3) for r in c.itertuples()],
        "McNemar p (spec.)": [p(r.mcnemar_specificity_p_vs_reference, r.reference) for r in c.itertuples()],
        "threshold": [("published cut-off" if r.kind == "criterion" else f"{r.threshold:.3g} ({r.threshold_source})")
                      for r in c.itertuples()],
    })


def regression_comparison_table(run: RunData) -> pd.DataFrame | None:
    c = run.comparison_regression
    if c is None or not len(c):
        return None
    return pd.DataFrame({
        "prediction": c["name"], "n": c["n"],
        "MAE (95% CI)": [_fmt(r.mae, r.mae_low, r.mae_high, 2) for r in c.itertuples()],
        "bias (95% CI)": [_fmt(r.bias, r.bias_low, r.bias_high, 2) for r in c.itertuples()],
        "Pearson r (95% CI)": [_fmt(r.pearson_r, r.pearson_r_low, r.pearson_r_high, 3) for r in c.itertuples()],
    })


def model_card(run: RunData) -> list[tuple[str, str]]:
    """A short model card (Mitchell et al., FAT* 2019): data, target, model, split, seed, software, intended use
    and limits."""
    bundle, metrics, config = run.bundle, run.metrics, run.config or {}
    training = (bundle.training if bundle is not None else None) or metrics.get("training", {})
    spec = run.spec
    card: list[tuple[str, str]] = []
    sizes = metrics.get("split_sizes") or {k: training.get(f"n_{k}") for k in ("train", "val", "test")}
    card.append(("data", f"cohort '{run.cohort_name}'; participants train/val/test: "
                         f"{sizes.get('train')}/{sizes.get('val')}/{sizes.get('test')}; evaluated here: "
                         f"{metrics.get('test', {}).get('n')} ({metrics.get('split', '')} split)"))
    if spec is not None:
        thresholds = spec.lvh_thresholds
        lvh = (f"; LVH: > {thresholds.male:g} (men), > {thresholds.female:g} (women)" if thresholds else "")
        card.append(("target", f"{spec.name} ({spec.kind.value}){lvh}"))
    if bundle is not None:
        n_params = bundle.n_weights
        settings = ", ".join(f"{k}={v}" for k, v in bundle.model_kwargs.items()) or "default settings"
        card.append(("model", f"{bundle.model_name} ({settings}); {n_params:,} weights; inputs: "
                              f"{bundle.n_leads} leads x {bundle.n_samples} samples median beat at "
                              f"{bundle.input_spec.get('fs')} Hz + {bundle.n_meta} clinical features"))
        if bundle.clinical_columns:
            card.append(("clinical variables", ", ".join(bundle.clinical_columns)))
    if training:
        card.append(("split", f"seed {training.get('split_seed')}, fractions {training.get('split_fractions')}; "
                              f"test ids sha256 {training.get('test_ids_sha256')}"))
        card.append(("training", f"loss {training.get('criterion') or 'the default for the target'}, sampling "
                                 f"{training.get('sampling')}, best epoch {training.get('best_epoch')} of "
                                 f"{training.get('epochs_run')}"
                     + (f"; fine-tuned from {training['finetuned_from']}" if training.get("finetuned_from") else "")))
    seed = (config.get("fit") or {}).get("seed", metrics.get("seed"))
    card.append(("seeds", f"training {seed}, bootstrap {metrics.get('seed')} ({metrics.get('n_resamples')} resamples)"))
    threshold = run.posthoc.get("threshold")
    if threshold is not None:
        card.append(("decision threshold", f"{threshold:.4g}, chosen on the validation split (Youden)"))
    if bundle is not None and bundle.versions:
        card.append(("software", ", ".join(f"{k} {v}" for k, v in sorted(bundle.versions.items()))))
    card.append(("intended use", "research: estimating LV mass / screening for LVH from a 12-lead ECG and clinical "
                                 "variables in cohorts like the training cohort; not a diagnostic device"))
    card.append(("limits", "validated only on the cohorts shown here; probabilities reflect the stated prevalence "
                           "(re-adjust for another population); inputs must match the bundle's input contract "
                           "(leads, sampling rate, filters); performance in subgroups is in the subgroup figure"))
    return card


def headline_numbers(run: RunData) -> dict[str, Any]:
    """The handful of numbers for the report's summary line."""
    test = run.metrics.get("test", {})
    out: dict[str, Any] = {"n": test.get("n"), "LVH cases": test.get("lvh_cases")}
    for key, value in test.items():
        if isinstance(value, dict) and "mae" in value:
            out[f"MAE {key}"] = _fmt(value["mae"]["estimate"], value["mae"]["low"], value["mae"]["high"], 2)
            out[f"r {key}"] = _fmt(value["pearson_r"]["estimate"], value["pearson_r"]["low"],
                                   value["pearson_r"]["high"], 3)
    lvh = test.get("lvh_at_validation_youden")
    if lvh:
        out["AUROC"] = _fmt(lvh["auroc"]["estimate"], lvh["auroc"]["low"], lvh["auroc"]["high"], 3)
    return out


AT_CRITERIA_SENSITIVITY = "model sensitivity at that specificity (threshold chosen on these test participants)"


def _best_sensitivity(score: np.ndarray, truth: np.ndarray, max_fpr: float) -> tuple[float, float]:
    """(sensitivity, threshold) of the empirical ROC point with the highest sensitivity whose false-positive rate
    does not exceed ``max_fpr`` (a call: ``score >= threshold``; +inf, calling no one, is always allowed)."""
    order = np.argsort(-score, kind="stable")
    ordered, positive = score[order], truth[order] == 1
    last = np.r_[np.flatnonzero(np.diff(ordered) != 0), len(ordered) - 1]  # each distinct score's last row
    tpr = np.r_[0.0, np.cumsum(positive)[last] / positive.sum()]
    fpr = np.r_[0.0, np.cumsum(~positive)[last] / (~positive).sum()]
    thresholds = np.r_[np.inf, ordered[last]]
    best = int(np.argmax(np.where(fpr <= max_fpr + 1e-12, tpr, -1.0)))
    return float(tpr[best]), float(thresholds[best])


def sensitivity_at_criteria(run: RunData) -> pd.DataFrame | None:
    """For each classic criterion, the model's sensitivity at (at least) the criterion's specificity, on the
    participants the criterion scores (comparison_scores.csv: the model's and each criterion's per-participant
    score, a criterion calling LVH at a margin >= 0; LVH labels from results.csv): the best empirical ROC point of
    the model there whose false-positive rate does not exceed the criterion's. The threshold is chosen on these
    test participants, so the sensitivity is optimistic; point estimates, without intervals."""
    c, saved, results = run.comparison, run.comparison_scores, run.results
    if c is None or saved is None or results is None or "lvh_true" not in results or not len(c):
        return None
    models = [f"score: {name}" for name in c.loc[c["kind"] == "model", "name"] if f"score: {name}" in saved]
    criteria = [name for name in c.loc[c["kind"] == "criterion", "name"] if f"score: {name}" in saved]
    if not models or not criteria:
        return None
    truth = pd.to_numeric(results.set_index(results["eid"].astype(str))["lvh_true"], errors="coerce")
    truth = truth.reindex(saved["eid"].astype(str)).to_numpy(float)
    model = saved[models[0]].to_numpy(float)
    rows = []
    for name in criteria:
        margin = saved[f"score: {name}"].to_numpy(float)
        keep = np.isfinite(margin) & np.isfinite(model) & np.isfinite(truth)
        y, call = truth[keep], margin[keep] >= 0
        row = {"criterion": name, "n": int(keep.sum()), "criterion specificity": "n/a",
               "criterion sensitivity": "n/a", AT_CRITERIA_SENSITIVITY: "n/a", "model threshold": "n/a"}
        if (y == 1).any() and (y == 0).any():
            specificity = float(np.mean(~call[y == 0]))
            sensitivity, threshold = _best_sensitivity(model[keep], y, 1 - specificity)
            row.update({"criterion specificity": f"{specificity:.3f}",
                        "criterion sensitivity": f"{float(np.mean(call[y == 1])):.3f}",
                        AT_CRITERIA_SENSITIVITY: f"{sensitivity:.3f}",
                        "model threshold": f"{threshold:.4g}" if np.isfinite(threshold) else "none (no one called)"})
        rows.append(row)
    return pd.DataFrame(rows)


def subgroup_interactions(run: RunData) -> pd.DataFrame | None:
    """Per subgrouping (sex, age and BMI tertiles) of each subgroup panel, the saved test of whether the model
    performs differently between its levels (metrics.json ``subgroups.<output>.interaction``); None when the run
    saved no subgroups. A run evaluated before the tests existed gets a row saying so."""
    from aiecg.report.figures.subgroups import GROUPING_NAMES, SUBGROUP_NAMES

    records = []
    for key, block in run.metrics.get("subgroups", {}).items():
        metric = "auroc" if key == "lvh" else "mae"
        tests = block.get("interaction", {})
        for column, levels in block.get("subgroups", {}).items():
            test = tests.get(column)
            names = SUBGROUP_NAMES.get(column, {})
            estimates = ", ".join(f"{names.get(level, level)}: "
                                  f"{float(report.get(metric, {}).get('estimate', np.nan)):.3g}"
                                  for level, report in levels.items())
            row = {"output": "LVH" if key == "lvh" else key, "subgroups": GROUPING_NAMES.get(column, column),
                   "metric": metric.upper(), "per level": estimates, "statistic": "", "df": "", "p": "n/a",
                   "test": "", "note": ""}
            if test is None:
                row["note"] = "not saved by this run's evaluation (re-run aiecg evaluate)"
            else:
                statistic = float(test.get("statistic", np.nan))
                row.update({"statistic": f"{statistic:.2f}" if np.isfinite(statistic) else "",
                            "df": test.get("df", ""), "p": format_p(float(test.get("p", np.nan))),
                            "test": test.get("method", ""),
                            "note": "; ".join(filter(None, [test.get("note", ""), (
                                "left out (too few cases or non-cases): " + ", ".join(map(str, test["left_out"])))
                                if test.get("left_out") else ""]))})
            records.append(row)
    return pd.DataFrame(records) if records else None


def reclassification_table(run: RunData) -> pd.DataFrame | None:
    """The reclassification of participants by the model against each classic criterion (reclassification.csv):
    events and non-events separately, each with its moves and its NRI with a bootstrap 95% interval (Pencina et
    al., Stat Med 2008; reported apart as Leening et al., Ann Intern Med 2014 ask); the sum last, marked as not a
    proportion."""
    r = run.reclassification
    if r is None or not len(r):
        return None
    return pd.DataFrame({
        "criterion (old call)": r["criterion"], "n": r["n"],
        "events: up / down": [f"{int(x.events_up)} / {int(x.events_down)} of {int(x.events)}" for x in r.itertuples()],
        "NRI events (95% CI)": [_fmt(x.nri_events, x.nri_events_low, x.nri_events_high, 3) for x in r.itertuples()],
        "non-events: down / up": [f"{int(x.non_events_down)} / {int(x.non_events_up)} of {int(x.non_events)}"
                                  for x in r.itertuples()],
        "NRI non-events (95% CI)": [_fmt(x.nri_non_events, x.nri_non_events_low, x.nri_non_events_high, 3)
                                    for x in r.itertuples()],
        "sum (not a proportion)": [_fmt(x.nri_total, x.nri_total_low, x.nri_total_high, 3) for x in r.itertuples()],
        "model threshold": [f"{x.model_threshold:.3g}" for x in r.itertuples()],
    })
