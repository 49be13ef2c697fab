"""Models x clinical variables x targets on the default synthetic cohort (5,000 participants; issue 4's table),
and staged fine-tuning on a synthetic external cohort with a domain shift.

Writes ``benchmarks/results/models_table.json`` and ``.md``::

    .venv/bin/python benchmarks/models_table.py --epochs 30
    .venv/bin/python benchmarks/models_table.py --epochs 30 --only finetune
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import train as train_py  # noqa: E402  (the default cohorts are built the way train.py builds them)

from aiecg.config import (  # noqa: E402
    FinetuneConfig,
    FinetuneRunConfig,
    RunConfig,  # noqa: E402
)
from aiecg.evaluate.evaluation import headline  # noqa: E402
from aiecg.synth import EXTERNAL_SHIFT  # noqa: E402
from aiecg.train.loop import FitConfig  # noqa: E402
from aiecg.workflows.train import finetune_run, train_run  # noqa: E402

OUT = ROOT / "runs" / "benchmark_models"


def estimate(metric: dict | None) -> float | None:
    return None if metric is None else metric["estimate"]


def summary_row(name: str, metrics: dict, seconds: float) -> dict:
    h = headline(metrics["test"])
    return {
        "run": name, "seconds": round(seconds, 1), "epochs_run": metrics.get("training", {}).get("epochs_run"),
        "mae": estimate(h.get("ilvm_mae")), "pearson_r": estimate(h.get("ilvm_pearson_r")),
        "lvh_auroc": estimate(h.get("lvh_auroc")), "lvh_auroc_ci": [h["lvh_auroc"]["low"], h["lvh_auroc"]["high"]]
        if h.get("lvh_auroc") else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--only", choices=["table", "finetune"], default=None)
    args = parser.parse_args()
    cohort = train_py.synthetic_cohort(ROOT / train_py.DEFAULT_DATA, train_py.DEFAULT_N, False, False)
    results_path = ROOT / "benchmarks" / "results" / "models_table.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["epochs"] = args.epochs
    if args.only in (None, "table"):
        rows = []
        for arch in ("fcn", "resnet34"):
            for target in ("INDEXED_MASS", "LVH"):
                for excl_meta in (False, True):
                    name = f"{arch}_{target.lower()}{'_ecgonly' if excl_meta else ''}"
                    config = RunConfig(cohort=str(cohort), target=target, arch=arch, excl_meta=excl_meta, name=name,
                                       out=str(OUT), compare=False,
                                       fit=FitConfig(max_epochs=args.epochs, early_stopping=10, lr_patience=5))
                    started = time.perf_counter()
                    result = train_run(config, progress=False)
                    rows.append({"arch": arch, "target": target, "clinical": not excl_meta,
                                 **summary_row(name, result.metrics, time.perf_counter() - started)})
                    print(json.dumps(rows[-1]), flush=True)
        results["table"] = rows
    if args.only in (None, "finetune"):
        external = train_py.synthetic_cohort(ROOT / train_py.DEFAULT_EXT_DATA, train_py.DEFAULT_EXT_N, True, False)
        bundle = OUT / "fcn_indexed_mass" / "model.aiecg"
        if not bundle.exists():
            config = RunConfig(cohort=str(cohort), target="INDEXED_MASS", name="fcn_indexed_mass", out=str(OUT),
                               compare=False, fit=FitConfig(max_epochs=args.epochs, early_stopping=10, lr_patience=5))
            train_run(config, progress=False)
        started = time.perf_counter()
        tuned = finetune_run(FinetuneRunConfig(
            bundle=str(bundle), cohort=str(external), out=str(OUT / "fcn_indexed_mass_finetuned"),
            finetune=FinetuneConfig(max_epochs_per_stage=args.epochs), device="cpu"), progress=False)
        before, after = headline(tuned.metrics["test_untuned"]), headline(tuned.metrics["test"])
        results["finetune"] = {
            "external_cohort": f"synthetic, {EXTERNAL_SHIFT} (docs/external-shift.md), 1,500",
            "seconds": round(time.perf_counter() - started, 1), "stages": tuned.metrics["stages"],
            "untuned": {k: before[k] for k in ("ilvm_mae", "ilvm_pearson_r", "lvh_auroc") if k in before},
            "tuned": {k: after[k] for k in ("ilvm_mae", "ilvm_pearson_r", "lvh_auroc") if k in after},
        }
        print(json.dumps(results["finetune"], indent=2), flush=True)
    results_path.write_text(json.dumps(results, indent=2, default=float))
    lines = ["| model | target | clinical | test MAE (g/m2) | r | LVH AUROC | epochs | training s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results.get("table", []):
        def fmt(v):
            return "" if v is None else f"{v:.3f}"
        lines.append(f"| {r['arch']} | {r['target']} | {'yes' if r['clinical'] else 'no'} | {fmt(r['mae'])} | "
                     f"{fmt(r['pearson_r'])} | {fmt(r['lvh_auroc'])} | {r['epochs_run']} | {r['seconds']} |")
    results_path.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
