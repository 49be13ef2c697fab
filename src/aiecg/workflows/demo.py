"""``aiecg demo``: the whole pipeline on a small synthetic cohort, within 10 minutes on 2 CPU cores.

synth (LVH enriched so the test split holds enough cases) -> prepare (median beats) -> train (FCN,
INDEXED_MASS, with clinical variables; fewer epochs and a shorter patience than the reference's 200/20 so it
fits the budget) -> evaluate the saved bundle on the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiecg.config import FitConfig, RunConfig
from aiecg.data.prepare import PrepareConfig, prepare_store
from aiecg.evaluate.evaluation import headline
from aiecg.workflows.evaluate import evaluate_bundle
from aiecg.workflows.train import train_run

DEMO_N = 2500
DEMO_LVH_PREVALENCE = 0.2
DEMO_EPOCHS = 60


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("runs/demo")
    n: int | None = None
    workers: int = 2
    max_epochs: int | None = None
    seed: int = 0


def run_demo(config: DemoConfig, progress: bool = True,
             on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo and return where everything is, with the headline test metrics. ``on_stage`` is called with
    each stage's name as it starts (synth, prepare, train, evaluate, explain, report) and with ``done`` at the end
    (``benchmarks/memory_stages.py`` measures each stage's peak memory this way)."""
    from aiecg.synth import SynthConfig, generate_cohort

    stage = on_stage or (lambda name: None)
    out = Path(config.out)
    data = out / "data"
    cohort_yaml = data / "cohort.yaml"
    stage("synth")
    if not cohort_yaml.exists():
        generate_cohort(data, SynthConfig(n=config.n or DEMO_N, seed=config.seed, lvh_prevalence=DEMO_LVH_PREVALENCE,
                                          workers=config.workers), progress=progress)
    store = data / "store"
    stage("prepare")
    prepare_store(cohort_yaml, store, PrepareConfig(store_beats=False), workers=config.workers, progress=progress)
    epochs = config.max_epochs or DEMO_EPOCHS
    run = RunConfig(
        cohort=str(cohort_yaml), store=str(store), target="INDEXED_MASS", arch="fcn", out=str(out / "runs"),
        name="fcn_ilvm", fit=FitConfig(max_epochs=epochs, early_stopping=10, lr_patience=5, seed=config.seed),
    )
    stage("train")
    result = train_run(run, progress=progress)
    stage("evaluate")
    evaluation = evaluate_bundle(result.bundle_path, cohort_yaml, store, out / "evaluation", split="test")
    regression = {row["name"]: row for row in evaluation["comparison"].get("regression", [])}
    # the last steps: explanations (they need the optional captum, the 'explain' extra) and the HTML report
    import logging

    from aiecg.explain.attributions import ExplainError
    from aiecg.workflows.report import write_report

    log = logging.getLogger("aiecg")
    report_inputs = [result.run_dir]
    try:
        from aiecg.workflows.explain import explain_bundle

        stage("explain")
        explain_bundle(result.bundle_path, cohort_yaml, store, out / "explain", n_steps=32, max_participants=64,
                       seed=config.seed, figures=False)
        report_inputs.append(out / "explain")
    except ExplainError as exc:
        log.warning("explanations skipped: %s", exc)
    stage("report")
    report_html = write_report(report_inputs, out / "report", title="aiecg demo report")
    log.info("report: %s", report_html)
    stage("done")
    return {
        "report": str(report_html),
        "cohort": str(cohort_yaml), "store": str(store), "run_dir": str(result.run_dir),
        "bundle": str(result.bundle_path), "results": str(out / "evaluation" / "results.csv"),
        "metrics": str(out / "evaluation" / "metrics.json"),
        "comparison": str(out / "evaluation" / "comparison.md"),
        "test": headline(evaluation["test"]),
        "clinical_linear_pearson_r": regression.get("Linear clinical-only", {}).get("pearson_r"),
    }
