"""Command line: ``aiecg synth | prepare | train | evaluate | demo``. Thin: parse, build a config, call the package."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiecg.errors import AiecgError


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N (e.g. 3/10), got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def cmd_synth(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.synth import EXTERNAL_SHIFT, SynthConfig, generate_cohort

    shift = EXTERNAL_SHIFT if args.shift else None
    config = SynthConfig(n=args.n, seed=args.seed, lvh_prevalence=args.lvh_prevalence, fmt=args.format,
                         shift=shift, workers=args.workers)
    result = generate_cohort(args.out, config, progress=not args.quiet)
    return {"cohort_yaml": str(result.cohort_yaml), "table": str(result.table), "ecg_dir": str(result.ecg_dir)}


def cmd_prepare(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.data.prepare import PrepareConfig, merge_parts, prepare_store

    out = Path(args.out) if args.out else Path(args.cohort).parent / "store"
    if args.merge_only:
        return {"store": str(out), **merge_parts(out)}
    config = PrepareConfig(store_beats=not args.no_beats, chunk_size=args.chunk_size)
    summary = prepare_store(args.cohort, out, config, workers=args.workers, shard=args.shard,
                            progress=not args.quiet)
    return {"store": str(out), **summary}


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.config import RunConfig
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.train import train_run

    config = RunConfig.load(args.config) if args.config else RunConfig()
    model_kwargs = dict(config.model_kwargs)
    if args.conv_dropout is not None:
        model_kwargs["conv_dropout"] = args.conv_dropout
    if args.lin_dropout is not None:
        model_kwargs["head_dropout"] = args.lin_dropout
    config = config.override(
        cohort=args.cohort, store=args.store, target=args.target, arch=args.arch, model_kwargs=model_kwargs,
        excl_meta=True if args.excl_meta else None, out=args.out, name=args.name, split_seed=args.split_seed,
        criterion=args.criterion, loss_weighting=True if args.loss_weighting else None,
        augment=True if args.augment else None, beat_expansion=True if args.beat_expansion else None,
        resume=True if args.resume else None, fit__max_epochs=args.epochs, fit__seed=args.seed,
        fit__device=args.device, fit__sampling=args.sampling,
    )
    if not config.cohort:
        raise AiecgError("no cohort given: pass --cohort cohort.yaml (or set 'cohort' in --config)")
    result = train_run(config, progress=not args.quiet)
    return {"run_dir": str(result.run_dir), "bundle": str(result.bundle_path), "test": headline(result.metrics["test"])}


def cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.train import finetune_run

    result = finetune_run(args.bundle, args.cohort, args.store, args.out, seed=args.seed, criterion=args.criterion,
                          progress=not args.quiet)
    return {"run_dir": str(result.run_dir), "bundle": str(result.bundle_path),
            "test_untuned": headline(result.metrics["test_untuned"]), "test": headline(result.metrics["test"])}


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.evaluate import evaluate_bundle

    metrics = evaluate_bundle(args.bundle, args.cohort, args.store, args.out, split=args.split,
                              compare=not args.no_compare, seed=args.seed, n_resamples=args.resamples)
    return {"out": args.out, "test": headline(metrics["test"])}


def cmd_cohort(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.data.public import build_ptbxl_cohort, build_wfdb_folder_cohort

    if args.source == "ptbxl":
        result = build_ptbxl_cohort(args.root, args.out, rate=args.rate, lvh_threshold=args.lvh_threshold,
                                    below_threshold=args.below_threshold, only_present=not args.all_records,
                                    use_folds=not args.seeded_split, table_format=args.table_format)
    else:
        result = build_wfdb_folder_cohort(args.folder, args.out, lvh_codes=tuple(args.lvh_code or ("164873001",)),
                                          recursive=not args.no_recursive, table_format=args.table_format,
                                          name=args.name)
    return result.to_dict()


def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.demo import DemoConfig, run_demo

    config = DemoConfig(out=Path(args.out), n=args.n, workers=args.workers, max_epochs=args.epochs, seed=args.seed)
    return run_demo(config, progress=not args.quiet)


def cmd_predict(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.predict import predict_run

    return predict_run(args.bundle, args.inputs, args.out, clinical=args.clinical, id_column=args.id_column,
                       sex_column=args.sex_column, fmt=args.format, workers=args.workers, interval=args.interval,
                       engine=args.engine, onnx_path=args.onnx, batch_size=args.batch_size, progress=not args.quiet)


def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.export import export_bundle

    return export_bundle(args.bundle, args.onnx)


def build_parser() -> argparse.ArgumentParser:
    from aiecg.data.sampling import SAMPLING_MODES
    from aiecg.data.targets import list_targets
    from aiecg.models import list_models
    from aiecg.train.losses import CRITERIA

    parser = argparse.ArgumentParser(prog="aiecg", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a synthetic UK-Biobank-like cohort (CardioSoft XML + table)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=2000, help="participants")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lvh-prevalence", type=float, default=None,
                   help="enrich LVH to this share (default: natural, about 1.5%% as in UK Biobank)")
    p.add_argument("--format", choices=["cardiosoft", "wfdb"], default="cardiosoft")
    p.add_argument("--shift", action="store_true", help="an external cohort: other device gain/noise and population")
    p.add_argument("--workers", type=int, default=_default_workers())
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("prepare", help="ECG files of a cohort -> the prepared store (median beats, beats, QC)")
    p.add_argument("--cohort", required=True, help="cohort YAML")
    p.add_argument("--out", help="store directory (default: store/ beside the cohort YAML)")
    p.add_argument("--workers", type=int, default=_default_workers())
    p.add_argument("--shard", type=_shard, default=(1, 1), help="K/N: process the K-th of N shards")
    p.add_argument("--merge-only", action="store_true", help="only merge the parts of finished shards")
    p.add_argument("--no-beats", action="store_true", help="store median beats only, not individual beats")
    p.add_argument("--chunk-size", type=int, default=64, help="records per part (the unit of resumption)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model on a cohort's prepared store")
    p.add_argument("--config", help="run-config YAML (flags override it)")
    p.add_argument("--cohort", help="cohort YAML")
    p.add_argument("--store", help="store directory (default: store/ beside the cohort YAML)")
    p.add_argument("--target", choices=list_targets())
    p.add_argument("--arch", choices=list_models())
    p.add_argument("--excl-meta", action="store_true", help="ECG only, no clinical variables")
    p.add_argument("--epochs", type=int, help="maximum epochs")
    p.add_argument("--seed", type=int, help="training seed")
    p.add_argument("--split-seed", type=int, help="participant-split seed")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="auto: CUDA when available (bfloat16 autocast)")
    p.add_argument("--criterion", choices=CRITERIA, help="loss (default: LogCosh, BCE or cross-entropy by target)")
    p.add_argument("--sampling", choices=SAMPLING_MODES, help="rebalance classes each epoch (categorical targets)")
    p.add_argument("--loss-weighting", action="store_true", help="weight the rare class in the loss")
    p.add_argument("--augment", action="store_true", help="seeded augmentation of training batches")
    p.add_argument("--beat-expansion", action="store_true",
                   help="every clean beat of a training LVH participant as an extra sample (store with beats)")
    p.add_argument("--conv-dropout", type=float, help="dropout after the convolutions")
    p.add_argument("--lin-dropout", type=float, help="dropout in the head")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.add_argument("--out", help="directory of runs")
    p.add_argument("--name", help="run name")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a saved model on an external cohort (staged unfreezing)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--cohort", required=True, help="the external cohort YAML")
    p.add_argument("--store")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--criterion", choices=CRITERIA)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("evaluate", help="apply a saved model bundle to a cohort")
    p.add_argument("--bundle", required=True)
    p.add_argument("--cohort", required=True)
    p.add_argument("--store")
    p.add_argument("--out", required=True)
    p.add_argument("--split", choices=["test", "all"], default="test",
                   help="'test': the training run's test split (checked); 'all': every participant")
    p.add_argument("--no-compare", action="store_true", help="skip the baselines and classic criteria")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("cohort", help="a public data set (PTB-XL, a PhysioNet/CinC WFDB folder) -> cohort table + YAML")
    cohort_sub = p.add_subparsers(dest="source", required=True)
    q = cohort_sub.add_parser("ptbxl", help="PTB-XL: ptbxl_database.csv + records -> LVH cohort with the folds")
    q.add_argument("--root", required=True, help="PTB-XL folder (ptbxl_database.csv, records500/, records100/)")
    q.add_argument("--out", required=True, help="output folder (cohort.csv, cohort.yaml, excluded.csv)")
    q.add_argument("--rate", type=int, choices=[500, 100], default=500, help="records500 (hr) or records100 (lr)")
    q.add_argument("--lvh-threshold", type=float, default=0.0,
                   help="least likelihood (0-100) of the 'LVH' statement that counts as LVH (default 0: any)")
    q.add_argument("--below-threshold", choices=["negative", "exclude"], default="negative",
                   help="an LVH statement below the threshold: a negative, or excluded from LVH runs")
    q.add_argument("--all-records", action="store_true",
                   help="keep records whose files are absent (default: only those present; the rest in excluded.csv)")
    q.add_argument("--seeded-split", action="store_true",
                   help="no predefined folds: runs use the seeded 70/15/15 split, by patient")
    q.add_argument("--table-format", choices=["csv", "parquet"], default="csv")
    q = cohort_sub.add_parser("wfdb-folder", help="WFDB records with # Age/# Sex/# Dx header comments (CinC style)")
    q.add_argument("--folder", required=True, help="folder of .hea + .mat/.dat records (searched recursively)")
    q.add_argument("--out", required=True, help="output folder (cohort.csv, cohort.yaml, excluded.csv)")
    q.add_argument("--lvh-code", action="append",
                   help="Dx code meaning LVH (repeatable; default: SNOMED-CT 164873001)")
    q.add_argument("--name", help="cohort name (default: the folder's name)")
    q.add_argument("--no-recursive", action="store_true", help="only the folder itself, not its sub-folders")
    q.add_argument("--table-format", choices=["csv", "parquet"], default="csv")
    p.set_defaults(func=cmd_cohort)

    p = sub.add_parser("demo", help="synth -> prepare -> train -> evaluate on a small synthetic cohort")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n", type=int, default=None, help="participants (default: the demo's size)")
    p.add_argument("--workers", type=int, default=_default_workers())
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("predict", help="apply a saved model bundle to ECG files: one prediction row per file")
    p.add_argument("--bundle", required=True)
    p.add_argument("inputs", nargs="+", help="ECG files, folders (searched recursively) or cohort YAMLs")
    p.add_argument("--out", required=True, help="predictions table (.csv, or .parquet)")
    p.add_argument("--clinical", help="table (.csv/.parquet) of the clinical variables, for models trained with them")
    p.add_argument("--id-column", help="the clinical table's id column (matches file stems, or 'ID_...' stems)")
    p.add_argument("--sex-column", default="sex", help="the clinical table's sex column (1/0 or male/female)")
    p.add_argument("--format", help="force one ECG reader instead of detection")
    p.add_argument("--workers", type=int, default=_default_workers())
    p.add_argument("--interval", type=float, default=0.9, help="level of the conformal prediction intervals")
    p.add_argument("--engine", choices=["torch", "onnx"], default="torch")
    p.add_argument("--onnx", help="with --engine onnx: this bundle's 'aiecg export' (default: export on the fly)")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a saved model bundle's network to ONNX (dynamic batch axis)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        summary = args.func(args)
    except AiecgError as exc:
        print(f"aiecg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"command": args.command, "seconds": round(time.perf_counter() - started, 1), **summary},
                     indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
