"""``aiecg report``: run, evaluation and explanation folders -> one static HTML page with figures and tables.

Renders saved results only (results.csv, metrics.json, comparison*.csv, epochs.csv, exclusions.csv, splits, the
bundle's metadata, the cohort's store); it never runs a model and never imports the training code.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from aiecg.report.runs import ReportError, RunData, load_run

matplotlib.use("Agg")


def complete_inputs(run: RunData) -> None:
    """What a folder written before the evaluation saved it lacks but the page draws, computed from its saved
    arrays as the evaluation computes it (:mod:`aiecg.evaluate.curves`): the ROC band of the primary LVH score,
    the calibration curves of its probability overall and by sex, and the proportional bias of a continuous
    prediction."""
    from aiecg.evaluate.curves import primary_calibration, proportional_bias, roc_band
    from aiecg.report.figures.base import primary_score, regression_stem

    score = primary_score(run)
    if run.roc_band is None and score is not None:
        _, labels, scores = score
        run.roc_band = roc_band(labels, scores)
    if run.calibration_curve is None and score is not None and "proba" in score[0]:
        run.calibration_curve = primary_calibration(run.results, score[0])
    stem = regression_stem(run)
    if run.proportional_bias is None and stem is not None:
        run.proportional_bias = proportional_bias(run.results[f"{stem}_true"].to_numpy(float),
                                                  run.results[f"{stem}_pred"].to_numpy(float))


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

