"""Staged fine-tuning under a chosen domain shift: a trained bundle applied to a synthetic external cohort
generated with that shift, before and after ``finetune_run``. Writes
``benchmarks/results/finetune_shift_<gain>_<noise>_<population>.json``::

    .venv/bin/python benchmarks/finetune_shift.py --bundle runs/benchmark_models/fcn_indexed_mass/model.aiecg \\
        --gain 1.5 --noise 3 --population 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from aiecg.config import FinetuneConfig, FinetuneRunConfig
from aiecg.data.prepare import PrepareConfig, prepare_store
from aiecg.evaluate.evaluation import headline
from aiecg.synth import DomainShift, SynthConfig, generate_cohort
from aiecg.workflows.train import finetune_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--gain", type=float, default=1.5)
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--population", type=float, default=1.0)
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs per stage")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-shift-"))
    try:
        shift = DomainShift(gain=args.gain, noise=args.noise, population=args.population)
        generate_cohort(work, SynthConfig(n=args.n, seed=1, lvh_prevalence=0.2, workers=2, shift=shift))
        prepare_store(work / "cohort.yaml", work / "store", PrepareConfig(store_beats=False), workers=2,
                      progress=False)
        tuned = finetune_run(FinetuneRunConfig(
            bundle=str(args.bundle), cohort=str(work / "cohort.yaml"), out=str(work / "finetuned"),
            finetune=FinetuneConfig(max_epochs_per_stage=args.epochs), device="cpu"), progress=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def summary(metrics: dict) -> dict:
        h = headline(metrics)
        return {"ilvm_mae": h["ilvm_mae"], "ilvm_pearson_r": h["ilvm_pearson_r"], "ilvm_bias": metrics["ilvm"]["bias"],
                "lvh_auroc": h.get("lvh_auroc")}

    result = {"bundle": str(args.bundle), "shift": vars(shift), "n": args.n, "stages": tuned.metrics["stages"],
              "untuned": summary(tuned.metrics["test_untuned"]), "tuned": summary(tuned.metrics["test"])}
    out = ROOT / "benchmarks" / "results" / f"finetune_shift_{args.gain:g}_{args.noise:g}_{args.population:g}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
