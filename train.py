#!/usr/bin/env python
"""Seed-compatible entry point: the flags of the reference code (Naderi, Kaplan et al.), mapped onto aiecg.

The data set comes from ``--data cohort.yaml`` (default: the synthetic UK-Biobank-like cohort, generated and
prepared under ``data/synthetic`` on first use). Examples (the reference README's)::

    python train.py --verbose --save "UKB_iLVM" --target "INDEXED_MASS" --train
    python train.py --verbose --save "UKB_LVH_ecgonly" --target "LVH" --train --excl_meta
    python train.py --save_results --verbose --target "INDEXED_MASS" --load UKB_iLVM.aiecg
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

NOT_YET_BUILT = {
    "--soto2022": "ResNet18/34 (Soto et al. 2022)", "--criterion": "loss selection",
    "--oversample": "oversampling", "--undersample": "undersampling", "--loss_weighting": "loss weighting",
    "--conv_dropout": "convolution-dropout override", "--lin_dropout": "head-dropout override",
    "--ext_val": "external validation", "--ext_tune": "external fine-tuning", "--recalib": "recalibration",
    "--save_splits": "saving splits (aiecg always saves them in the run directory)",
}
DEFAULT_DATA = Path("data/synthetic")
DEFAULT_N = 5000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from aiecg.data.targets import list_targets

    parser = argparse.ArgumentParser(description="Train or evaluate an AI-ECG model (reference-compatible flags)")
    parser.add_argument("--verbose", action="store_true", help="progress bars and a metrics summary")
    parser.add_argument("--save", help="run name; the bundle is written to NAME.aiecg and runs/NAME/")
    parser.add_argument("--target", choices=list_targets(), default="INDEXED_MASS")
    parser.add_argument("--train", action="store_true", help="train a model")
    parser.add_argument("--excl_meta", action="store_true", help="ECG only, no clinical variables")
    parser.add_argument("--load", help="a saved model bundle to evaluate")
    parser.add_argument("--save_results", action="store_true", help="write results.csv and metrics.json")
    parser.add_argument("--data", help="cohort YAML (default: the synthetic cohort)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default 200, as the reference)")
    parser.add_argument("--seed", type=int, default=0)
    args, unknown = parser.parse_known_args(argv)
    for flag in unknown:
        name = flag.split("=")[0]
        if name in NOT_YET_BUILT:
            parser.error(f"{name} ({NOT_YET_BUILT[name]}) is a reference flag aiecg does not support yet")
        parser.error(f"unrecognised argument {flag}")
    if not args.train and not args.load:
        parser.error("nothing to do: pass --train to train, or --load BUNDLE to evaluate a saved model")
    return args


def default_cohort(verbose: bool) -> Path:
    """The synthetic cohort, generated and prepared on first use."""
    from aiecg.data.prepare import PrepareConfig, prepare_store
    from aiecg.synth import SynthConfig, generate_cohort

    cohort = DEFAULT_DATA / "cohort.yaml"
    if not cohort.exists():
        generate_cohort(DEFAULT_DATA, SynthConfig(n=DEFAULT_N, seed=0, lvh_prevalence=0.2, workers=2),
                        progress=verbose)
    prepare_store(cohort, DEFAULT_DATA / "store", PrepareConfig(store_beats=False), workers=2, progress=verbose)
    return cohort


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from aiecg.config import RunConfig
    from aiecg.errors import AiecgError
    from aiecg.runs import evaluate_bundle, train_run
    from aiecg.train.loop import FitConfig

    try:
        cohort = Path(args.data) if args.data else default_cohort(args.verbose)
        name = args.save or f"{args.target.lower()}{'_ecgonly' if args.excl_meta else ''}"
        if args.train:
            if args.load:
                raise AiecgError("--train with --load fine-tunes a model: that needs --ext_tune, not built yet")
            config = RunConfig(cohort=str(cohort), target=args.target, excl_meta=args.excl_meta, name=name,
                               fit=FitConfig(max_epochs=args.epochs or 200, seed=args.seed))
            result = train_run(config, progress=args.verbose)
            shutil.copyfile(result.bundle_path, f"{name}.aiecg")
            summary = {"run_dir": str(result.run_dir), "bundle": f"{name}.aiecg", "test": result.metrics["test"]}
            if "test_clinical_linear" in result.metrics:
                summary["test_clinical_linear"] = result.metrics["test_clinical_linear"]
        else:
            out = Path("runs") / (args.save or Path(args.load).stem) / "evaluation"
            metrics = evaluate_bundle(args.load, cohort, None, out, split="test")
            if not args.save_results:
                for name in ("results.csv", "metrics.json"):
                    (out / name).unlink(missing_ok=True)
            summary = {"evaluation": str(out) if args.save_results else None, "test": metrics["test"]}
    except AiecgError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
