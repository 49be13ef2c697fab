"""Models x clinical variables x targets on the default synthetic cohort (5,000 participants; issue 4's table),
and staged fine-tuning on a synthetic external cohort with a domain shift.

Every run trains to early stopping (``--patience`` epochs without improvement, at most ``--max-epochs``) on the
same participant split (one split seed; the split depends only on the cohort and the target), so all runs of one
target are scored on the same test participants; each is compared with the FCN with clinical variables by paired
differences (R² and MAE of indexed LV mass, AUROC of LVH) with paired bootstrap intervals.

Writes ``benchmarks/results/models_table.json`` and ``.md``::

    .venv/bin/python benchmarks/models_table.py
    .venv/bin/python benchmarks/models_table.py --only finetune
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import train as train_py  # noqa: E402  (the default cohorts are built the way train.py builds them)

from aiecg.config import (  # noqa: E402
    FinetuneConfig,
    FinetuneRunConfig,
    RunConfig,  # noqa: E402
)
from aiecg.evaluate.bootstrap import bootstrap_ci  # noqa: E402
from aiecg.evaluate.evaluation import headline  # noqa: E402
from aiecg.evaluate.metrics import compute_auroc  # noqa: E402
from aiecg.evaluate.stats import r_squared  # noqa: E402
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


def paired_differences(runs: dict[str, dict], reference: str, seed: int = 0) -> list[dict]:
    """Each run minus ``reference`` (same target) on the test participants both scored (they are the same ids:
    checked), with paired bootstrap intervals."""
    def r2_difference(t, a, b, axis=-1):
        return r_squared(t, a, axis=axis) - r_squared(t, b, axis=axis)

    def mae_difference(t, a, b, axis=-1):
        return np.abs(t - a).mean(axis=axis) - np.abs(t - b).mean(axis=axis)

    def auroc_difference(t, a, b):
        return compute_auroc(t, a) - compute_auroc(t, b)

    rows = []
    base = runs[reference]
    for name, run in runs.items():
        if name == reference or run["target"] != base["target"]:
            continue
        a, b = run["table"].set_index("eid"), base["table"].set_index("eid")
        if set(a.index) != set(b.index):
            raise SystemExit(f"{name} and {reference} were tested on different participants; the comparison would "
                             "not be paired")
        a = a.loc[b.index]
        row = {"run": name, "reference": reference, "n_test": len(b)}
        if run["target"] == "INDEXED_MASS":
            t = b["ilvm_true"].to_numpy(float)
            for key, statistic in (("r2_difference", r2_difference), ("mae_difference", mae_difference)):
                ci = bootstrap_ci(statistic, t, a["ilvm_pred"].to_numpy(float), b["ilvm_pred"].to_numpy(float),
                                  seed=seed, n_resamples=1000)
                row[key] = [ci.estimate, ci.low, ci.high]
        else:
            t = b["lvh_true"].to_numpy(int)
            ci = bootstrap_ci(auroc_difference, t, a["lvh_proba"].to_numpy(float), b["lvh_proba"].to_numpy(float),
                              seed=seed, n_resamples=1000, stratify=t)
            row["auroc_difference"] = [ci.estimate, ci.low, ci.high]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-epochs", type=int, default=200, help="at most this many epochs per run")
    parser.add_argument("--patience", type=int, default=15, help="early stopping: epochs without improvement")
    parser.add_argument("--finetune-epochs", type=int, default=50, help="at most this many epochs per stage")
    parser.add_argument("--only", choices=["table", "finetune"], default=None)
    args = parser.parse_args()
    cohort = train_py.synthetic_cohort(ROOT / train_py.DEFAULT_DATA, train_py.DEFAULT_N, False, False)
    results_path = ROOT / "benchmarks" / "results" / "models_table.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["training"] = {"max_epochs": args.max_epochs, "patience": args.patience}
    results.pop("epochs", None)
    if args.only in (None, "table"):
        rows, runs = [], {}
        for arch in ("fcn", "resnet34"):
            for target in ("INDEXED_MASS", "LVH"):
                for excl_meta in (False, True):
                    name = f"{arch}_{target.lower()}{'_ecgonly' if excl_meta else ''}"
                    config = RunConfig(cohort=str(cohort), target=target, arch=arch, excl_meta=excl_meta, name=name,
                                       out=str(OUT), compare=False,
                                       fit=FitConfig(max_epochs=args.max_epochs, early_stopping=args.patience,
                                                     lr_patience=5))
                    started = time.perf_counter()
                    result = train_run(config, progress=False)
                    table = pd.read_csv(result.run_dir / "results.csv")
                    runs[name] = {"target": target, "table": table}
                    rows.append({"arch": arch, "target": target, "clinical": not excl_meta,
                                 **summary_row(name, result.metrics, time.perf_counter() - started)})
                    if target == "INDEXED_MASS":
                        rows[-1]["r2"] = float(r_squared(table["ilvm_true"].to_numpy(float),
                                                         table["ilvm_pred"].to_numpy(float)))
                    print(json.dumps(rows[-1]), flush=True)
        results["table"] = rows
        results["paired"] = (paired_differences(runs, "fcn_indexed_mass")
                             + paired_differences(runs, "fcn_lvh"))
    if args.only in (None, "finetune"):
        external = train_py.synthetic_cohort(ROOT / train_py.DEFAULT_EXT_DATA, train_py.DEFAULT_EXT_N, True, False)
        bundle = OUT / "fcn_indexed_mass" / "model.aiecg"
        if not bundle.exists():
            config = RunConfig(cohort=str(cohort), target="INDEXED_MASS", name="fcn_indexed_mass", out=str(OUT),
                               compare=False, fit=FitConfig(max_epochs=args.max_epochs, early_stopping=args.patience,
                                                            lr_patience=5))
            train_run(config, progress=False)
        started = time.perf_counter()
        tuned = finetune_run(FinetuneRunConfig(
            bundle=str(bundle), cohort=str(external), out=str(OUT / "fcn_indexed_mass_finetuned"),
            finetune=FinetuneConfig(max_epochs_per_stage=args.finetune_epochs), device="cpu"), progress=False)
        before, after = headline(tuned.metrics["test_untuned"]), headline(tuned.metrics["test"])
        results["finetune"] = {
            "external_cohort": f"synthetic, {EXTERNAL_SHIFT} (docs/external-shift.md), 1,500",
            "seconds": round(time.perf_counter() - started, 1), "stages": tuned.metrics["stages"],
            "untuned": {k: before[k] for k in ("ilvm_mae", "ilvm_pearson_r", "lvh_auroc") if k in before},
            "tuned": {k: after[k] for k in ("ilvm_mae", "ilvm_pearson_r", "lvh_auroc") if k in after},
        }
        print(json.dumps(results["finetune"], indent=2), flush=True)
    results_path.write_text(json.dumps(results, indent=2, default=float))
    lines = ["| model | target | clinical | test MAE (g/m2) | R² | r | LVH AUROC | epochs | training s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("table", []):
        def fmt(v):
            return "" if v is None else f"{v:.3f}"
        lines.append(f"| {r['arch']} | {r['target']} | {'yes' if r['clinical'] else 'no'} | {fmt(r['mae'])} | "
                     f"{fmt(r.get('r2'))} | {fmt(r['pearson_r'])} | {fmt(r['lvh_auroc'])} | {r['epochs_run']} | "
                     f"{r['seconds']} |")
    if results.get("paired"):
        lines += ["", "Paired differences on the same test participants (run minus reference, 95% bootstrap CI):", "",
                  "| run | reference | n test | R² difference | MAE difference | AUROC difference |",
                  "|---|---|---|---|---|---|"]
        for r in results["paired"]:
            def fci(v):
                return "" if v is None else f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"
            lines.append(f"| {r['run']} | {r['reference']} | {r['n_test']} | {fci(r.get('r2_difference'))} | "
                         f"{fci(r.get('mae_difference'))} | {fci(r.get('auroc_difference'))} |")
    results_path.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
