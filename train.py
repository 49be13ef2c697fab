#!/usr/bin/env python
"""Seed-compatible entry point: the flags of the reference code (Naderi, Kaplan et al.), mapped onto aiecg.

The data set comes from ``--data cohort.yaml`` (default: the synthetic UK-Biobank-like cohort, generated and
prepared under ``data/synthetic`` on first use); the external cohort of ``--ext_val``/``--ext_tune`` from
``--ext_data cohort.yaml`` (default: a synthetic cohort with another device's gain and noise and another
population, under ``data/synthetic_ext``). The reference README's examples run as written::

    python train.py --verbose --save "UKB_iLVM" --target "INDEXED_MASS" --train
    python train.py --verbose --save "UKB_LVH_ecgonly" --target "LVH" --train --excl_meta
    python train.py --verbose --save "UKB_LVH_r34" --soto2022 resnet34 --target "LVH" --train
    python train.py --save_results --verbose --target "INDEXED_MASS" --load UKB_iLVM.aiecg
    python train.py --save_results --verbose --target "INDEXED_MASS" --load UKB_iLVM.aiecg --train --ext_tune \\
        --save UKB_iLVM.SHIP

Bundles are written to ``NAME.aiecg`` and the run to ``runs/NAME/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

DEFAULT_DATA = Path("data/synthetic")
DEFAULT_EXT_DATA = Path("data/synthetic_ext")
DEFAULT_N = 5000
DEFAULT_EXT_N = 1500


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from aiecg.config import DEFAULT_DEVICE
    from aiecg.data.targets import list_targets
    from aiecg.train.losses import list_losses

    parser = argparse.ArgumentParser(description="Train or evaluate an AI-ECG model (reference-compatible flags)")
    parser.add_argument("--verbose", action="store_true", help="progress bars and a metrics summary")
    parser.add_argument("--save", help="run name; the bundle is written to NAME.aiecg and the run to runs/NAME/")
    parser.add_argument("--target", choices=list_targets(), default="INDEXED_MASS")
    parser.add_argument("--train", action="store_true", help="train a model (with --load and --ext_tune: fine-tune)")
    parser.add_argument("--excl_meta", action="store_true", help="ECG only, no clinical variables")
    parser.add_argument("--load", help="a saved model bundle (.aiecg) to evaluate or fine-tune")
    parser.add_argument("--save_results", action="store_true", help="write results.csv and metrics.json")
    parser.add_argument("--soto2022", choices=["resnet18", "resnet34"], help="a ResNet of Soto et al. 2022")
    parser.add_argument("--criterion", choices=list_losses(), help="loss (default by target)")
    parser.add_argument("--oversample", action="store_true", help="oversample the rare class (categorical targets)")
    parser.add_argument("--undersample", action="store_true", help="undersample the common class")
    parser.add_argument("--loss_weighting", action="store_true", help="weight the rare class in the loss")
    parser.add_argument("--conv_dropout", type=float, help="dropout after the convolutions")
    parser.add_argument("--lin_dropout", type=float, help="dropout in the head")
    parser.add_argument("--ext_val", action="store_true", help="also evaluate on the external cohort")
    parser.add_argument("--ext_tune", action="store_true", help="fine-tune --load on the external cohort")
    parser.add_argument("--recalib", action="store_true", help="linear recalibration on (sex, prediction), fitted on "
                        "the validation split")
    parser.add_argument("--save_splits", action="store_true", help="kept for compatibility: splits are always saved")
    parser.add_argument("--data", help="cohort YAML (default: the synthetic cohort)")
    parser.add_argument("--ext_data", help="external cohort YAML (default: the shifted synthetic cohort)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default 200, as the reference; per stage when "
                        "fine-tuning, default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=DEFAULT_DEVICE,
                        help="auto: CUDA when available (bfloat16 autocast), else the CPU")
    args = parser.parse_args(argv)
    if args.oversample and args.undersample:
        parser.error("--oversample and --undersample exclude each other")
    if args.ext_tune and not (args.load and args.train):
        parser.error("--ext_tune fine-tunes a saved model: pass --load BUNDLE --train --ext_tune")
    if args.train and args.load and not args.ext_tune:
        parser.error("--train with --load means fine-tuning: add --ext_tune (or drop --load to train anew)")
    if not args.train and not args.load:
        parser.error("nothing to do: pass --train to train, or --load BUNDLE to evaluate a saved model")
    if args.recalib and not args.train:
        parser.error("--recalib is fitted while training: pass it with --train")
    return args


def synthetic_cohort(root: Path, n: int, shift: bool, verbose: bool) -> Path:
    """A synthetic cohort, generated and prepared on first use (resumed if a previous run was interrupted)."""
    from aiecg.data.prepare import PrepareConfig, prepare_store
    from aiecg.synth import EXTERNAL_SHIFT, SynthConfig, generate_cohort

    cohort = root / "cohort.yaml"
    if not cohort.exists():
        config = SynthConfig(n=n, seed=1 if shift else 0, lvh_prevalence=None if shift else 0.2, workers=2,
                             shift=EXTERNAL_SHIFT if shift else None)
        generate_cohort(root, config, progress=verbose)
    prepare_store(cohort, root / "store", PrepareConfig(store_beats=False), workers=2, progress=verbose)
    return cohort


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from aiecg.bundle import load_bundle
    from aiecg.config import FinetuneConfig, FinetuneRunConfig, FitConfig, RunConfig
    from aiecg.errors import AiecgError
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.evaluate import evaluate_bundle
    from aiecg.workflows.train import finetune_run, train_run

    try:
        cohort = Path(args.data) if args.data else synthetic_cohort(DEFAULT_DATA, DEFAULT_N, False, args.verbose)
        need_ext = args.ext_val or args.ext_tune
        ext = None
        if need_ext:
            ext = Path(args.ext_data) if args.ext_data else synthetic_cohort(DEFAULT_EXT_DATA, DEFAULT_EXT_N, True,
                                                                             args.verbose)
        if args.load:
            bundle_target = load_bundle(args.load).target.name
            if bundle_target != args.target:
                raise AiecgError(f"{args.load} predicts {bundle_target}, not --target {args.target}")
        name = args.save or (Path(args.load).stem if args.load else
                             f"{args.target.lower()}{'_ecgonly' if args.excl_meta else ''}")
        summary: dict = {}
        if args.ext_tune:
            stages = FinetuneConfig(max_epochs_per_stage=args.epochs) if args.epochs else FinetuneConfig()
            run = FinetuneRunConfig(bundle=str(args.load), cohort=str(ext), out=str(Path("runs") / name),
                                    finetune=stages, seed=args.seed, device=args.device, criterion=args.criterion)
            result = finetune_run(run, progress=args.verbose)
            shutil.copyfile(result.bundle_path, f"{name}.aiecg")
            summary = {"run_dir": str(result.run_dir), "bundle": f"{name}.aiecg",
                       "external_test_untuned": headline(result.metrics["test_untuned"]),
                       "external_test": headline(result.metrics["test"])}
        elif args.train:
            model_kwargs = {}
            if args.conv_dropout is not None:
                model_kwargs["conv_dropout"] = args.conv_dropout
            if args.lin_dropout is not None:
                model_kwargs["head_dropout"] = args.lin_dropout
            sampling = "oversample" if args.oversample else "undersample" if args.undersample else "none"
            config = RunConfig(cohort=str(cohort), target=args.target, arch=args.soto2022 or "fcn",
                               model_kwargs=model_kwargs, excl_meta=args.excl_meta, name=name,
                               criterion=args.criterion, loss_weighting=args.loss_weighting, recalib=args.recalib,
                               fit=FitConfig(max_epochs=args.epochs or 200, seed=args.seed, device=args.device,
                                             sampling=sampling))
            result = train_run(config, progress=args.verbose)
            shutil.copyfile(result.bundle_path, f"{name}.aiecg")
            summary = {"run_dir": str(result.run_dir), "bundle": f"{name}.aiecg",
                       "test": headline(result.metrics["test"]),
                       "comparison": str(result.run_dir / "comparison.md")}
            if args.ext_val:
                external = evaluate_bundle(result.bundle_path, ext, None, result.run_dir / "external", split="all")
                summary["external_test"] = headline(external["test"])
        else:
            out = Path("runs") / name / "evaluation"
            summary["test"] = headline(evaluate_bundle(args.load, cohort, None, out, split="test")["test"])
            if args.ext_val:
                external = evaluate_bundle(args.load, ext, None, out / "external", split="all")
                summary["external_test"] = headline(external["test"])
            if not args.save_results:
                shutil.rmtree(out)
            else:
                summary["evaluation"] = str(out)
    except AiecgError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
