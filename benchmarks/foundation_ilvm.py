"""Indexed LV mass on the default synthetic cohort: FCN with clinical variables, FCN ECG-only, and a linear
regression on the clinical variables alone (same participants, same split).

Runs the reference's two commands through ``train.py`` (so the numbers are those a user gets) and collects
their ``metrics.json`` into ``benchmarks/results/foundation_ilvm.json``::

    .venv/bin/python benchmarks/foundation_ilvm.py            # the reference settings (up to 200 epochs)
    .venv/bin/python benchmarks/foundation_ilvm.py --epochs 40
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(name: str, extra: list[str], epochs: int | None) -> dict:
    command = [sys.executable, "train.py", "--save", name, "--target", "INDEXED_MASS", "--train", *extra]
    if epochs:
        command += ["--epochs", str(epochs)]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    metrics = json.loads((ROOT / "runs" / name / "metrics.json").read_text())
    return {"command": " ".join(command[1:]), "seconds": time.perf_counter() - started, "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the reference's 200)")
    args = parser.parse_args()
    with_meta = run("UKB_iLVM", [], args.epochs)
    ecg_only = run("UKB_iLVM_ecgonly", ["--excl_meta"], args.epochs)

    def headline(metrics: dict) -> dict:
        lvh = metrics.get("lvh_at_validation_youden", {})
        return {"n": metrics["n"], "mae": metrics["ilvm"]["mae"], "pearson_r": metrics["ilvm"]["pearson_r"],
                "lvh_auroc_lr": lvh.get("auroc")}

    def row(metrics: dict, name: str) -> dict:
        return next(r for r in metrics["comparison"]["regression"] if r["name"] == name)

    summary = {
        "cohort": "data/synthetic (train.py default: 5,000 participants, LVH enriched to 20%)",
        "fcn_with_clinical": headline(with_meta["metrics"]["test"]),
        "fcn_ecg_only": headline(ecg_only["metrics"]["test"]),
        "clinical_linear_regression": row(with_meta["metrics"], "Linear clinical-only"),
        "svr_ecg_plus_clinical": row(with_meta["metrics"], "SVR ecg+clinical"),
        "comparison_md": "runs/UKB_iLVM/comparison.md",
        "epochs_run": {"with_clinical": with_meta["metrics"]["training"]["epochs_run"],
                       "ecg_only": ecg_only["metrics"]["training"]["epochs_run"]},
        "seconds": {"with_clinical": with_meta["seconds"], "ecg_only": ecg_only["seconds"]},
        "commands": [with_meta["command"], ecg_only["command"]],
    }
    out = ROOT / "benchmarks" / "results" / "foundation_ilvm.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
