"""Command line: ``aiecg <command>`` (also ``python -m aiecg``). Thin: parse, build a config, call a workflow."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from aiecg.errors import AiecgError, ConfigError

DEVICES = ("auto", "cpu", "cuda")


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N (e.g. 3/10), got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


WORKERS_HELP = "worker processes (default: one per core of the CPU budget, see --threads)"
THREADS_HELP = ("CPU threads this command may use in all (default: the CPU affinity mask, the cgroup CPU quota or "
                "$SLURM_CPUS_PER_TASK, whichever is smallest; or $AIECG_THREADS); divided between its workers")


def _add_pool_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--threads`` of a command that starts a worker pool."""
    p.add_argument("--workers", type=int, default=None, help=WORKERS_HELP)
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    """``--record-timeout`` and ``--max-memory-mb`` of a command that reads each ECG in a supervised worker
    (``prepare``, ``measure``, ``predict``): a record past them is an error row, and the batch goes on."""
    p.add_argument("--record-timeout", type=float, default=300.0,
                   help="seconds one record may take before it is an error row (0: no limit)")
    p.add_argument("--max-memory-mb", type=int, default=None,
                   help="memory a worker may add while reading one record; beyond it the record is an error row")


def _limits(args: argparse.Namespace) -> Any:
    """The :class:`aiecg.data.workers.Limits` of ``--record-timeout`` and ``--max-memory-mb``."""
    from aiecg.data.workers import Limits

    if args.record_timeout < 0 or (args.max_memory_mb is not None and args.max_memory_mb < 1):
        raise ConfigError(f"--record-timeout must be at least 0 (0: no limit) and --max-memory-mb at least 1, got "
                          f"{args.record_timeout:g} and {args.max_memory_mb}")
    return Limits(timeout_s=args.record_timeout or None, memory_mb=args.max_memory_mb)


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal: ``--quiet`` turns them off, and so does output to a file or a pipe
    (a log), where a bar would write every update as a line."""
    return not args.quiet and sys.stderr.isatty()


def _apply_thread_budget(args: argparse.Namespace) -> None:
    """Settle the command's CPU budget (:mod:`aiecg.threads`) before it starts: ``--threads`` becomes
    ``$AIECG_THREADS`` for every stage and child process, ``--workers`` defaults to one per allotted core, and
    this process computes with its share."""
    from aiecg.threads import ENV_VAR, cpu_budget, use_threads

    if getattr(args, "threads", None) is not None:
        os.environ[ENV_VAR] = str(cpu_budget(args.threads).cores)
    budget = cpu_budget()
    if hasattr(args, "workers"):
        if args.workers is not None and args.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {args.workers}")
        args.workers = budget.workers(args.workers)
        use_threads(budget.per_worker(args.workers))  # the parent's share (predict runs the model here)
    else:
        use_threads(budget.cores)


def cmd_synth(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.synth import EXTERNAL_SHIFT, SynthConfig, generate_cohort

    shift = EXTERNAL_SHIFT if args.shift else None
    config = SynthConfig(n=args.n, seed=args.seed, lvh_prevalence=args.lvh_prevalence, fmt=args.format,
                         shift=shift, workers=args.workers)
    result = generate_cohort(args.out, config, progress=_progress(args))
    return {"cohort_yaml": str(result.cohort_yaml), "table": str(result.table), "ecg_dir": str(result.ecg_dir)}


def cmd_prepare(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.cliopts import collect_overrides, merge
    from aiecg.config import default_store
    from aiecg.data.prepare import PrepareConfig, merge_parts, prepare_store

    out = Path(args.out) if args.out else default_store(args.cohort)
    if args.merge_only:
        return {"store": str(out), **merge_parts(out)}
    changes = collect_overrides(args)
    if args.mains is not None:
        changes = merge(changes, {"filters": {"notch_hz": None if args.mains == "none" else float(args.mains)}})
    if args.no_beats:
        changes["store_beats"] = False
    if args.strips is not None:
        changes["strips"] = {"fs": args.strips, "seconds": args.strip_seconds}
    elif args.strip_seconds != 10.0:
        raise ConfigError("--strip-seconds sets the duration of the rhythm strips; add --strips to keep them")
    try:
        config = PrepareConfig.from_dict(merge(PrepareConfig().to_dict(), changes))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"prepare settings: {exc}") from None
    limits = _limits(args)
    summary = prepare_store(args.cohort, out, config, workers=args.workers, shard=args.shard,
                            progress=_progress(args), limits=limits)
    return {"store": str(out), **summary}


def _run_config(args: argparse.Namespace):
    """The run configuration: defaults, then the --config YAML, then every flag given."""
    from aiecg.cliopts import collect_overrides, merge
    from aiecg.config import RunConfig

    base = RunConfig.load(args.config).to_dict() if args.config else RunConfig().to_dict()
    changes = collect_overrides(args)
    kwargs = dict(changes.pop("model_kwargs", {}))
    if getattr(args, "conv_dropout", None) is not None:
        kwargs["conv_dropout"] = args.conv_dropout
    if getattr(args, "lin_dropout", None) is not None:
        kwargs["head_dropout"] = args.lin_dropout
    config = RunConfig.from_dict(merge(base, {**changes, "model_kwargs": {**base["model_kwargs"], **kwargs}}))
    if not config.cohort:
        raise ConfigError("no cohort given: pass --cohort cohort.yaml (or set 'cohort' in --config)")
    return config


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.train import train_run

    result = train_run(_run_config(args), progress=_progress(args))
    if not result.metrics:  # a torchrun rank other than 0: rank 0 reports
        return {"run_dir": str(result.run_dir), "rank": int(os.environ.get("RANK", 0))}
    return {"run_dir": str(result.run_dir), "bundle": str(result.bundle_path), "test": headline(result.metrics["test"])}


def cmd_pretrain(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.cliopts import collect_overrides, merge
    from aiecg.config import PretrainConfig
    from aiecg.workflows.pretrain import pretrain_run

    base = PretrainConfig.load(args.config).to_dict() if args.config else PretrainConfig().to_dict()
    config = PretrainConfig.from_dict(merge(base, collect_overrides(args)))
    result = pretrain_run(config, progress=_progress(args))
    if not result.summary:  # a torchrun rank other than 0
        return {"run_dir": str(result.run_dir), "rank": int(os.environ.get("RANK", 0))}
    return {"run_dir": str(result.run_dir), **result.summary}


def cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.cliopts import collect_overrides
    from aiecg.config import FinetuneRunConfig
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.train import finetune_run

    config = FinetuneRunConfig.from_dict(collect_overrides(args))
    result = finetune_run(config, progress=_progress(args))
    return {"run_dir": str(result.run_dir), "bundle": str(result.bundle_path),
            "test_untuned": headline(result.metrics["test_untuned"]), "test": headline(result.metrics["test"])}


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.evaluate import evaluate_bundle

    metrics = evaluate_bundle(args.bundle, args.cohort, args.store, args.out, split=args.split,
                              compare=not args.no_compare, seed=args.seed, n_resamples=args.resamples,
                              target_prevalence=args.target_prevalence,
                              criteria_options={"cornell_product": {"female_adjustment_mv": args.cornell_female_mv}})
    return {"out": args.out, "test": headline(metrics["test"])}


def cmd_cohort(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.conventions import SNOMED_LVH
    from aiecg.data.public import build_ptbxl_cohort, build_wfdb_folder_cohort

    if args.source == "ptbxl":
        result = build_ptbxl_cohort(args.root, args.out, rate=args.rate, lvh_threshold=args.lvh_threshold,
                                    below_threshold=args.below_threshold, only_present=not args.all_records,
                                    use_folds=not args.seeded_split, table_format=args.table_format)
    else:
        result = build_wfdb_folder_cohort(args.folder, args.out, lvh_codes=tuple(args.lvh_code or (SNOMED_LVH,)),
                                          recursive=not args.no_recursive, table_format=args.table_format,
                                          name=args.name)
    return result.to_dict()


def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.demo import DemoConfig, run_demo

    config = DemoConfig(out=Path(args.out), n=args.n, workers=args.workers, max_epochs=args.epochs, seed=args.seed)
    return run_demo(config, progress=_progress(args))


def cmd_report(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.report import write_report

    return {"report": str(write_report(args.runs, args.out, title=args.title))}


def cmd_explain(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.explain import explain_bundle

    summary = explain_bundle(args.bundle, args.cohort, args.store, args.out, split=args.split, n_steps=args.steps,
                             max_participants=args.max_participants, seed=args.seed, figures=not args.no_figures,
                             sanity_participants=args.sanity_participants, ecg_file=args.ecg,
                             clinical=args.clinical, fmt=args.format)
    check = summary["randomisation_check"]
    passes = {name: m["passes"] for name, m in check["maps"].items()} if check else None
    return {"out": args.out, "n": summary["n"], "convergence_delta": summary["convergence_delta"],
            "randomisation_check_passes": passes}


def cmd_tune(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.evaluate.evaluation import headline
    from aiecg.workflows.tune import TuneConfig, finalise, search

    base = _run_config(args)
    worker = args.worker_id if args.worker_id is not None else int(os.environ.get("SLURM_ARRAY_TASK_ID", 0))
    config = TuneConfig(base=base, out=Path(args.out), space=args.space, n_trials=args.trials,
                        max_epochs=args.epochs, storage=args.storage, study=args.study, pruner=args.pruner,
                        worker=worker, heartbeat=args.heartbeat)
    summary: dict[str, Any] = {}
    if not args.final_only:
        summary["search"] = search(config, progress=_progress(args))
    if not args.search_only:
        best = finalise(config, progress=_progress(args))
        summary["best"] = {**{k: best[k] for k in ("best_trial", "params", "val_loss", "bundle")},
                           "test": headline(best["test"])}
    return summary


def cmd_measure(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.measure import run_measure

    return run_measure(args.inputs, args.out, with_beats=args.beats, fmt=args.format, workers=args.workers,
                       progress=_progress(args), with_leads=args.per_lead, limits=_limits(args))


def cmd_plot(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.report.ecgplot import PaperSettings, PlotError
    from aiecg.workflows.plot import plot_files

    lead_order = tuple(x.strip() for x in args.leads.split(",")) if args.leads else None
    rhythm = tuple(x.strip() for x in args.rhythm.split(",") if x.strip()) if args.rhythm is not None else ("II",)
    try:
        settings = PaperSettings(speed_mm_s=args.speed, gain_mm_mv=args.gain, px_per_mm=args.px_per_mm,
                                 line_width_mm=args.line_width, layout=args.layout, lead_order=lead_order,
                                 rhythm=rhythm, duration_s=args.duration, filtered=not args.raw,
                                 fiducials=args.fiducials, grid=not args.no_grid)
    except PlotError as exc:
        raise ConfigError(str(exc)) from None
    return plot_files(args.inputs, args.out, settings, fmt=args.format, image_format=args.image_format)


def cmd_predict(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.predict import predict_run

    return predict_run(args.bundle, args.inputs, args.out, clinical=args.clinical, id_column=args.id_column,
                       sex_column=args.sex_column, fmt=args.format, workers=args.workers, interval=args.interval,
                       engine=args.engine, onnx_path=args.onnx, batch_size=args.batch_size, progress=_progress(args),
                       target_prevalence=args.target_prevalence, impute_missing_columns=args.impute_missing_columns,
                       limits=_limits(args))


def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from aiecg.workflows.export import export_bundle

    return export_bundle(args.bundle, args.onnx)


def _run_choices() -> dict[str, Any]:
    """The choices of the run-configuration flags (``train``, ``tune``): registered targets, models and losses."""
    from aiecg.contract import INPUTS
    from aiecg.data.sampling import SAMPLING_MODES
    from aiecg.data.targets import list_targets
    from aiecg.models import list_models
    from aiecg.train.losses import list_losses

    return {"target": list_targets(), "arch": list_models(), "input": list(INPUTS), "criterion": list_losses(),
            "fit.sampling": SAMPLING_MODES, "fit.device": DEVICES}


def _synth_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg synth``."""
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=2000, help="participants")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lvh-prevalence", type=float, default=None,
                   help="enrich LVH to this share (default: natural, about 1.5%% as in UK Biobank)")
    p.add_argument("--format", choices=["cardiosoft", "wfdb"], default="cardiosoft")
    p.add_argument("--shift", action="store_true", help="an external cohort: another device, routine-care electrode "
                   "placement and an older, heavier population (docs/external-shift.md)")
    _add_pool_options(p)


def _prepare_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg prepare``."""
    from aiecg.cliopts import add_dataclass_options
    from aiecg.data.prepare import PrepareConfig

    p.add_argument("--cohort", required=True, help="cohort YAML")
    p.add_argument("--out", help="store directory (default: store/ beside the cohort YAML)")
    _add_pool_options(p)
    p.add_argument("--shard", type=_shard, default=(1, 1), help="K/N: process the K-th of N shards")
    p.add_argument("--merge-only", action="store_true", help="only merge the parts of finished shards")
    p.add_argument("--no-beats", action="store_true", help="store median beats only, not individual beats")
    p.add_argument("--strips", type=float, nargs="?", const=250.0, metavar="HZ",
                   help="also keep each record's filtered 10 s, 12-lead rhythm strip (strips.npy, for --input rhythm "
                        "or both models), resampled to HZ [default: off; HZ 250 when given without a value]; a "
                        "recording shorter than the strip by more than 0.1 s is an error row")
    p.add_argument("--strip-seconds", type=float, default=10.0, help="duration of the rhythm strips [default: 10]")
    _add_limit_options(p)
    p.add_argument("--mains", choices=["50", "60", "none"],
                   help="mains frequency to notch: 50 (Europe), 60 (North America, e.g. GE MUSE archives from the "
                        "US) or none [default: 50]; the same as --notch-hz")
    settings = p.add_argument_group("pre-processing settings (saved in the store's manifest; a model's bundle "
                                    "records them and refuses a store prepared otherwise)")
    add_dataclass_options(settings, PrepareConfig, flatten={"filters": "", "beats": "", "beats.quality": "qc-"},
                          skip=("strips",))


def _train_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg train``."""
    from aiecg.cliopts import add_dataclass_options
    from aiecg.config import RunConfig

    p.add_argument("--config", help="run-config YAML (flags override it)")
    p.add_argument("--epochs", type=int, dest="cfg__fit__max_epochs", default=argparse.SUPPRESS, metavar="INT",
                   help="maximum epochs (the same as --max-epochs)")
    p.add_argument("--conv-dropout", type=float, metavar="NUMBER",
                   help="dropout after the convolutions (a model_kwargs entry)")
    p.add_argument("--lin-dropout", type=float, metavar="NUMBER",
                   help="dropout in the head (a model_kwargs entry: head_dropout)")
    add_dataclass_options(p, RunConfig, flatten={"fit": ""}, choices=_run_choices())


def _pretrain_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg pretrain``."""
    from aiecg.cliopts import add_dataclass_options
    from aiecg.config import PretrainConfig
    from aiecg.models import list_models

    p.add_argument("--config", help="pre-training config YAML (flags override it)")
    p.add_argument("--epochs", type=int, dest="cfg__fit__max_epochs", default=argparse.SUPPRESS, metavar="INT",
                   help="maximum epochs (the same as --max-epochs)")
    add_dataclass_options(p, PretrainConfig, flatten={"fit": ""}, skip=("fit.sampling",),
                          choices={"arch": list_models(), "fit.device": DEVICES, "input": ["median", "rhythm"]})


def _finetune_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg finetune``."""
    from aiecg.cliopts import add_dataclass_options
    from aiecg.config import FinetuneRunConfig
    from aiecg.train.losses import list_losses

    p.add_argument("--epochs", type=int, dest="cfg__finetune__max_epochs_per_stage", default=argparse.SUPPRESS,
                   metavar="INT", help="maximum epochs per stage (the same as --max-epochs-per-stage)")
    add_dataclass_options(p, FinetuneRunConfig, flatten={"finetune": ""},
                          choices={"criterion": list_losses(), "device": DEVICES})


def _evaluate_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg evaluate``."""
    p.add_argument("--bundle", required=True)
    p.add_argument("--cohort", required=True)
    p.add_argument("--store")
    p.add_argument("--out", required=True)
    p.add_argument("--split", choices=["test", "all"], default="test",
                   help="'test': the training run's test split (checked); 'all': every participant")
    p.add_argument("--no-compare", action="store_true", help="skip the baselines and classic criteria")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--target-prevalence", type=float,
                   help="the LVH prevalence that prior-shift adjusted probabilities, PPV and NPV describe "
                        "[default: the bundle's, i.e. its training split's unless set at training]")
    p.add_argument("--cornell-female-mv", type=float, default=0.6,
                   help="female adjustment of the Cornell product in mV: 0.6 (LIFE, the default) or 0.8 (Molloy 1992)")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def _cohort_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg cohort``."""
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
                   help="Dx code meaning LVH (repeatable; default: the SNOMED-CT code of LVH, 164873001)")
    q.add_argument("--name", help="cohort name (default: the folder's name)")
    q.add_argument("--no-recursive", action="store_true", help="only the folder itself, not its sub-folders")
    q.add_argument("--table-format", choices=["csv", "parquet"], default="csv")


def _demo_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg demo``."""
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n", type=int, default=None, help="participants (default: the demo's size)")
    _add_pool_options(p)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)


def _report_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg report``."""
    p.add_argument("runs", nargs="+", help="training, fine-tuning, `aiecg evaluate` or `aiecg explain` folders")
    p.add_argument("--out", required=True, help="report folder (index.html, figures/, tables/)")
    p.add_argument("--title", default="aiecg report")


def _explain_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg explain``."""
    p.add_argument("--bundle", required=True)
    p.add_argument("--cohort", required=True,
                   help="the cohort to explain; with --ecg, the bundle's training cohort (its training split gives "
                        "the baseline beat per sex)")
    p.add_argument("--store")
    p.add_argument("--out", required=True, help="output folder (attributions.npz, explain.json, figures/)")
    p.add_argument("--ecg", help="explain this one ECG file (any readable format) instead of the cohort")
    p.add_argument("--clinical", help="with --ecg: a table of its clinical values (one row, or the row whose first "
                                      "column is the file's stem); without it they are imputed")
    p.add_argument("--format", help="with --ecg: force one reader (cardiosoft, wfdb, ...) instead of detection")
    p.add_argument("--split", choices=["test", "all"], default="test",
                   help="'test': the bundle's test split (checked); 'all': every usable participant")
    p.add_argument("--steps", type=int, default=50, help="integration steps")
    p.add_argument("--max-participants", type=int, default=500, help="explain a seeded sample of at most this many")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-figures", action="store_true", help="save the attributions only (the report draws them)")
    p.add_argument("--sanity-participants", type=int, default=50,
                   help="participants (a seeded sample) for the model-randomisation check of the maps (Adebayo et "
                        "al. 2018); 0: skip it")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def _tune_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg tune``."""
    from aiecg.cliopts import add_dataclass_options
    from aiecg.config import RunConfig

    p.add_argument("--config", help="run-config YAML every trial starts from (flags override it)")
    base_run = p.add_argument_group("the run every trial starts from (the search space overrides what it searches)")
    add_dataclass_options(base_run, RunConfig, flatten={"fit": ""}, skip=("out", "name", "fit.max_epochs"),
                          choices=_run_choices())
    p.add_argument("--space", help="search-space YAML replacing the reference's space")
    p.add_argument("--trials", type=int, default=50, help="finished trials the study ends with (all workers)")
    p.add_argument("--epochs", type=int, default=125, help="epochs per trial at most")
    p.add_argument("--pruner", choices=["hyperband", "halving", "none"], default="hyperband")
    p.add_argument("--storage", help="sqlite:///file.db (default OUT/study.db), journal:///shared/fs/study.log "
                                     "or a database URL; workers with one storage and --study share the study")
    p.add_argument("--study", default="aiecg-tune", help="study name")
    p.add_argument("--worker-id", type=int, help="distinct per worker (default: $SLURM_ARRAY_TASK_ID or 0)")
    p.add_argument("--heartbeat", type=float, default=30.0,
                   help="seconds between heartbeats; a trial silent for 4 is re-queued (a killed worker)")
    p.add_argument("--out", default="runs/tune", help="output directory (trials.csv, best.json, best/)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--search-only", action="store_true", help="run trials, do not retrain the best (workers)")
    mode.add_argument("--final-only", action="store_true", help="only retrain and test the study's best trial")


def _measure_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg measure``."""
    p.add_argument("inputs", nargs="+", help="ECG files, folders (searched recursively) or cohort YAML files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--beats", action="store_true", help="also write beats.csv, one row per detected beat (global "
                   "IEC 60601-2-25 boundaries)")
    p.add_argument("--per-lead", action="store_true", help="also write leads.csv, one row per beat and lead (P, QRS "
                   "and T onset, peak and offset in each lead)")
    p.add_argument("--format", help="force a reader format for files and folders (default: detected per file)")
    _add_pool_options(p)
    _add_limit_options(p)


def _plot_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg plot``."""
    from aiecg.report.ecgplot import LAYOUTS

    p.add_argument("inputs", nargs="+", help="ECG files (any format aiecg reads)")
    p.add_argument("--out", required=True,
                   help="an image (.png, .pdf, .svg) for one file, or a folder (one <stem>.png per file)")
    p.add_argument("--layout", choices=list(LAYOUTS), default="3x4",
                   help="3x4 (+ rhythm strip), 6x2, 12x1, 8 (I, II, V1-V6) or median (the median beats, 3x4)")
    p.add_argument("--speed", type=float, default=25.0, help="paper speed in mm/s (50 spreads median beats)")
    p.add_argument("--gain", type=float, default=10.0, help="amplitude scale in mm/mV (5 for large voltages)")
    p.add_argument("--line-width", type=float, default=0.25, help="trace width in mm")
    p.add_argument("--leads", help="lead order filling the layout column by column, comma-separated "
                                   "(e.g. aVL,I,aVR,II,aVF,III,V1,V2,V3,V4,V5,V6: the limb leads in Cabrera order)")
    p.add_argument("--rhythm", help="rhythm strip lead(s) below a 3x4 or 8 layout, comma-separated; '' for none "
                                    "[default: II]")
    p.add_argument("--duration", type=float, default=10.0, help="seconds shown (at most the recording's)")
    p.add_argument("--fiducials", action="store_true",
                   help="mark P, QRS and T-end boundaries of every beat and print the measurements (aiecg measure)")
    p.add_argument("--raw", action="store_true", help="draw the signal as stored (default: filtered 0.5-100 Hz)")
    p.add_argument("--no-grid", action="store_true", help="white paper")
    p.add_argument("--px-per-mm", type=float, default=10.0, help="PNG pixels per mm of paper (10: 254 dpi)")
    p.add_argument("--image-format", choices=["png", "pdf", "svg"], default="png", help="with a folder --out")
    p.add_argument("--format", help="force a reader format (default: detected per file)")


def _predict_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg predict``."""
    p.add_argument("--bundle", required=True)
    p.add_argument("inputs", nargs="+", help="ECG files, folders (searched recursively) or cohort YAMLs")
    p.add_argument("--out", required=True, help="predictions table (.csv, or .parquet)")
    p.add_argument("--clinical", help="table (.csv/.parquet) of the clinical variables, for models trained with them")
    p.add_argument("--id-column", help="the clinical table's id column (matches file stems, or 'ID_...' stems)")
    p.add_argument("--sex-column", default="sex", help="the clinical table's sex column (1/0 or male/female)")
    p.add_argument("--format", help="force one ECG reader instead of detection")
    _add_pool_options(p)
    _add_limit_options(p)
    p.add_argument("--interval", type=float, default=0.9, help="level of the conformal prediction intervals")
    p.add_argument("--engine", choices=["torch", "onnx"], default="torch")
    p.add_argument("--onnx", help="with --engine onnx: this bundle's 'aiecg export' (default: export on the fly)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--target-prevalence", type=float, metavar="SHARE",
                   help="LVH prevalence of the population you predict on (e.g. 0.02): the *_prioradj probabilities "
                        "are shifted to it; lvh_call stays at the evaluated operating point [default: the bundle's, "
                        "printed before predicting]")
    p.add_argument("--impute-missing-columns", action="store_true",
                   help="clinical columns the table lacks (or all, without --clinical) are imputed by the model's "
                        "encoder for every row instead of refused; rows say so (n_imputed, mostly_imputed)")


def _export_options(p: argparse.ArgumentParser) -> None:
    """The options of ``aiecg export``."""
    p.add_argument("--bundle", required=True)
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Any]]] = {
    "synth": ("generate a synthetic UK-Biobank-like cohort (CardioSoft XML + table)", _synth_options, cmd_synth),
    "prepare": ("ECG files of a cohort -> the prepared store (median beats, beats, QC)", _prepare_options,
                cmd_prepare),
    "train": ("train a model on a cohort's prepared store", _train_options, cmd_train),
    "pretrain": ("self-supervised pre-training of an ECG encoder on the usable records of prepared stores (masked "
                 "reconstruction); start a model from it with 'aiecg train --init'", _pretrain_options, cmd_pretrain),
    "finetune": ("fine-tune a saved model on an external cohort (staged unfreezing)", _finetune_options,
                 cmd_finetune),
    "evaluate": ("apply a saved model bundle to a cohort", _evaluate_options, cmd_evaluate),
    "cohort": ("a public data set (PTB-XL, a PhysioNet/CinC WFDB folder) -> cohort table + YAML", _cohort_options,
               cmd_cohort),
    "demo": ("synth -> prepare -> train -> evaluate on a small synthetic cohort", _demo_options, cmd_demo),
    "report": ("run/evaluation/explain folders -> a static HTML report with figures and tables", _report_options,
               cmd_report),
    "explain": ("integrated gradients and class activation maps of a saved model on a cohort", _explain_options,
                cmd_explain),
    "tune": ("hyperparameter search (Optuna; pruned on validation loss), then the best setting retrained and "
             "tested once", _tune_options, cmd_tune),
    "measure": ("ECG files/folders/cohort YAML -> measurements.csv (+ beats.csv): intervals, axes, amplitudes, "
                "criteria, per-beat P/QRS/T fiducials, QC", _measure_options, cmd_measure),
    "plot": ("ECG files -> standard ECG paper (3x4 + rhythm strip, 6x2, 12x1, 8-lead, median beats) at an exact "
             "speed and gain, fiducials optional", _plot_options, cmd_plot),
    "predict": ("apply a saved model bundle to ECG files: one prediction row per file", _predict_options,
                cmd_predict),
    "export": ("export a saved model bundle's network to ONNX (dynamic batch axis)", _export_options, cmd_export),
}
"""Every command: its one-line help, the function that adds its options, and the function that runs it. Only the
command being run has its options built, so ``aiecg --help`` or ``aiecg measure`` never imports what ``train``
needs (torch)."""


SIGNIFICANT_DIGITS = 4
"""Significant digits of the figures a command's summary prints (a metric's third decimal, a prevalence's
tenth of a percent); the files a command writes keep theirs."""


def rounded(value: Any) -> Any:
    """A summary with every float rounded for reading: seconds to 0.1 s, everything else to
    :data:`SIGNIFICANT_DIGITS` significant digits (``13.324183873000038`` -> ``13.32``)."""
    if isinstance(value, dict):
        return {k: round(v, 1) if isinstance(v, float) and str(k).endswith("seconds") else rounded(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")) and value != 0:
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what is wrong (with the valid choices, where there
    are some) and where to read more, not the whole usage first."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``aiecg`` parser; ``commands``: build only these commands' options (None: every command's)."""
    parser = OneLineParser(prog="aiecg", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_options, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if commands is None or name in commands:
            add_options(p)
        p.set_defaults(func=run)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is not an option), if it is one."""
    word = next((token for token in argv if not token.startswith("-")), None)
    return word if word in COMMANDS else None


def run_interruptible(func: Callable[[], Any]) -> Any:
    """``func()``, such that a Ctrl-C during it always ends it with KeyboardInterrupt: Python swallows a
    KeyboardInterrupt raised while a finaliser or weakref callback runs ('Exception ignored in ...', seen in
    matplotlib's transform callbacks), and the command then finished as if never interrupted. The SIGINT handler
    notes the interrupt before raising, and a noted one is raised again when ``func`` returns. A SIGINT that is not
    the default (ignored in a background job, or the caller's own handler) and other threads are left alone."""
    import signal
    import threading

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return func()
    noted: list[int] = []

    def on_interrupt(signum: int, frame: Any) -> None:
        noted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = func()
        if noted:  # raised where Python could only print it: the command was interrupted all the same
            raise KeyboardInterrupt
        return result
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _forget_interrupts_in_string_code() -> None:
    """Let a handled Ctrl-C exit 130 under ``python -m`` too. CPython notes a KeyboardInterrupt that ends any code
    run from a string (``exec`` of source text, as dataclasses and named tuples do while a module is imported) and,
    under ``python -m``, ends the process by SIGINT (status -2) at exit, although the interrupt was caught and
    handled. Running an empty string resets the note (Modules/main.c, Python/pythonrun.c: the flag
    ``unhandled_keyboard_interrupt`` is cleared before every string is run)."""
    exec("", {})


def main(argv: list[str] | None = None) -> int:
    from aiecg.threads import ENV_VAR

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    try:  # building the options lists the models, adapters' included (AIECG_MODELS)
        parser = build_parser([command] if command else [])
    except AiecgError as exc:
        print(f"aiecg: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    started = time.perf_counter()
    budget_before = os.environ.get(ENV_VAR)
    try:
        _apply_thread_budget(args)
        summary = run_interruptible(lambda: args.func(args))
    except AiecgError as exc:
        print(f"aiecg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the disk filled up while writing: atomic writes leave no partial file
        from aiecg.files import write_problem

        print(f"aiecg {args.command}: error: {write_problem(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aiecg {args.command}: interrupted", file=sys.stderr)
        _forget_interrupts_in_string_code()
        return 130
    finally:  # an in-process caller keeps its own environment
        if budget_before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = budget_before
    print(json.dumps(rounded({"command": args.command, "seconds": time.perf_counter() - started, **summary}),
                     indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
