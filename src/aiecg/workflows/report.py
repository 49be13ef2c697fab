"""``aiecg report``: run, evaluation and explanation folders -> one static HTML page with figures and tables.

``aiecg.report`` only renders (results.csv, metrics.json, comparison*.csv, epochs.csv, exclusions.csv, splits,
decision_curve.csv, the cohort table). What it shows beyond those files is prepared here, once, and handed over as
plain values: the bundle's description (:class:`aiecg.report.runs.BundleInfo`), the median-beat summaries from the
cohort's store, and the curves a run folder did not save (:mod:`aiecg.evaluate.curves`: ROC band,
calibration by sex, proportional bias, the LR model's curve). No model is run and no training code imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from aiecg.report.runs import BundleInfo, ReportError, RunData, load_run

matplotlib.use("Agg")


def bundle_info(path: Path, notes: list[str]) -> BundleInfo | None:
    """The bundle at ``path`` described in plain values for the page (None, with a note, when unreadable)."""
    import numpy as np

    from aiecg.bundle import load_bundle
    from aiecg.errors import AiecgError

    try:
        bundle = load_bundle(path)
    except AiecgError as exc:
        notes.append(f"model bundle not readable: {exc}")
        return None
    return BundleInfo(
        model_name=bundle.model_name, model_kwargs=dict(bundle.model_kwargs),
        n_weights=sum(int(np.prod(t.shape)) for t in bundle.state_dict.values()), n_leads=bundle.n_leads,
        n_samples=bundle.n_samples, n_meta=bundle.n_meta, input_spec=dict(bundle.input_spec), target=bundle.target,
        clinical_columns=tuple(bundle.encoder.spec.columns) if bundle.encoder is not None else (),
        training=dict(bundle.training), versions=dict(bundle.versions))


def median_beat_summary(run: RunData) -> dict[str, Any] | None:
    """Mean and SD of the evaluated participants' median beats by LVH and by prediction, from the cohort's
    store, in the standard lead order (None without a store or results)."""
    import numpy as np

    from aiecg.data.store import Store
    from aiecg.errors import AiecgError
    from aiecg.evaluate.curves import median_beat_groups
    from aiecg.report.figures.base import LEAD_ORDER, primary_score, regression_stem

    if run.store_path is None or run.results is None:
        return None
    try:
        store = Store.open(run.store_path)
    except AiecgError as exc:
        run.notes.append(f"store not readable: {exc}")
        return None
    leads = [lead for lead in LEAD_ORDER if lead in store.leads]
    table = run.results
    try:
        beats = store.medians(table["eid"].astype(str).to_numpy(), leads)
    except Exception as exc:  # noqa: BLE001 - a store that no longer matches the run: say so, draw the rest
        return {"note": f"store {store.root} does not hold the run's participants ({exc})"}
    manifest = store.manifest
    time_ms = (np.arange(manifest["window"]) - manifest["r_offset"]) * 1000.0 / manifest["fs"]
    stem = regression_stem(run)
    column = f"{stem}_pred" if stem else (primary_score(run) or (None,))[0]
    lvh = table["lvh_true"].to_numpy(float) if "lvh_true" in table else None
    prediction = table[column].to_numpy(float) if column is not None else None
    return {"time_ms": time_ms, "leads": leads, "panels": median_beat_groups(beats, lvh, prediction, str(column))}


def complete_inputs(run: RunData) -> None:
    """What the page draws beyond the run's files, prepared once: the bundle's description, the median-beat
    summaries, and for a run written before the evaluation saved its curves, those curves (the same functions of
    :mod:`aiecg.evaluate.curves` that ``workflows/evaluate.write_curves`` uses)."""
    from aiecg.evaluate import curves
    from aiecg.evaluate.evaluation import proportional_bias_status
    from aiecg.report.figures.base import primary_score, regression_stem

    if run.bundle is None and run.bundle_path is not None:
        run.bundle = bundle_info(run.bundle_path, run.notes)
    if run.median_beats is None:
        run.median_beats = median_beat_summary(run)
    table = run.results
    if table is None:
        return
    score, stem = primary_score(run), regression_stem(run)
    if score is not None:
        column, labels, scores = score
        all_labels = table["lvh_true"].to_numpy(float)
        if run.roc_curves is None or run.pr_curves is None:
            scored = [(column, "model", table[column].to_numpy(float))]
            saved, comparison = run.comparison_scores, run.comparison
            if saved is not None and comparison is not None and len(saved) == len(table):
                scored += [(row.name, row.kind, saved[f"score: {row.name}"].to_numpy(float))
                           for row in comparison[comparison["kind"] != "model"].itertuples()
                           if f"score: {row.name}" in saved]
            if run.roc_curves is None:
                run.roc_curves = curves.roc_table(all_labels, scored)
            if run.pr_curves is None:
                run.pr_curves = curves.pr_table(all_labels, scored, run.posthoc.get("target_prevalence"))
        if run.roc_band is None:
            run.roc_band = curves.roc_band(labels, scores)
        if run.pr_band is None:
            run.pr_band = curves.pr_bands(labels, scores, run.posthoc.get("target_prevalence"))
        if run.reclassification is None:
            run.reclassification = reclassification(run)
        if run.calibration_curve is None and "proba" in column:
            run.calibration_curve = curves.primary_calibration(table, column)
    if run.probability_calibration is None:
        run.probability_calibration = curves.probability_calibration(table)
    if stem is not None:
        if run.regression_calibration is None:
            run.regression_calibration = curves.regression_calibration(table, stem)
        if run.proportional_bias is None:
            run.proportional_bias = curves.proportional_bias(table[f"{stem}_true"].to_numpy(float),
                                                             table[f"{stem}_pred"].to_numpy(float))
        bias = proportional_bias_status(run.proportional_bias)
        if bias["status"] != "estimated":  # the page says why the Bland-Altman plot has no regression line
            run.notes.append(f"proportional bias not estimable: {bias['reason']}")
        run.proportional_bias = bias if bias["status"] == "estimated" else None
        lr = run.posthoc.get("lr")
        if run.lr_curve is None and lr is not None:
            run.lr_curve = curves.lr_curve(lr, table[f"{stem}_pred"].to_numpy(float))
            guideline = run.spec.lvh_thresholds if run.spec is not None else None
            run.lr_cutoffs = curves.lr_cutoffs(lr, run.posthoc.get("threshold"), None if guideline is None
                                               else {0: guideline.female, 1: guideline.male})


def reclassification(run: RunData) -> pd.DataFrame | None:
    """The NRI of the model against each criterion (:func:`aiecg.evaluate.reclassification.reclassification_table`)
    from a run's saved per-participant scores, for a run evaluated before it saved ``reclassification.csv``; None
    without a model row with a threshold and a criterion in its comparison."""
    import numpy as np

    from aiecg.evaluate.reclassification import reclassification_table

    comparison, saved, table = run.comparison, run.comparison_scores, run.results
    if comparison is None or saved is None or table is None or "lvh_true" not in table:
        return None
    models = comparison[(comparison["kind"] == "model") & comparison["name"].map(lambda n: f"score: {n}" in saved)]
    criteria = {name: saved[f"score: {name}"].to_numpy(float)
                for name in comparison.loc[comparison["kind"] == "criterion", "name"] if f"score: {name}" in saved}
    if models.empty or not criteria or not np.isfinite(models["threshold"].iloc[0]):
        return None
    labels = table.set_index(table["eid"].astype(str))["lvh_true"].reindex(saved["eid"].astype(str))
    return reclassification_table(labels.to_numpy(float), saved[f"score: {models['name'].iloc[0]}"].to_numpy(float),
                                  float(models["threshold"].iloc[0]), criteria, seed=run.metrics.get("seed", 0),
                                  n_resamples=run.metrics.get("n_resamples", 1000))


def write_report(inputs: list[str | Path], out: str | Path, title: str = "aiecg report") -> Path:
    """Render every folder in ``inputs`` into ``out/index.html``; returns the page's path."""
    from aiecg.files import check_output
    from aiecg.report.html import render_report

    if not inputs:
        raise ReportError("no folders given: pass one or more run, evaluation or explain folders")
    check_output(out)
    runs = []
    for path in inputs:
        run = load_run(path)
        untuned = Path(path) / "untuned"
        if run.kind == "finetune" and (untuned / "metrics.json").exists():  # the same test split before tuning
            before = load_run(untuned)
            before.label = f"{Path(path).name} (before fine-tuning)"
            runs.append(before)
        runs.append(run)
    if all(run.kind == "explain" for run in runs):
        raise ReportError("only explain folders given: add the run or evaluation folder they explain")
    for run in runs:
        complete_inputs(run)
    return render_report(runs, out, title)

