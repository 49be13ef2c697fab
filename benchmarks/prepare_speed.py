"""Throughput of CardioSoft XML -> store (read, filter, beats, median, measurements, QC), records per second per
core. The machine may be shared, so besides wall-clock time every figure is also given per CPU-second (this process
and its finished worker processes), with ``os.getloadavg()`` before and after. Writes
``benchmarks/results/prepare_speed.json``::

    .venv/bin/python benchmarks/prepare_speed.py --n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from aiecg.data.prepare import PrepareConfig, prepare_record, prepare_store
from aiecg.io import read_ecg
from aiecg.synth import SynthConfig, generate_cohort

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the store's worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def in_process(files: list[Path], config: PrepareConfig) -> dict[str, float]:
    """``prepare_record`` in this process, one record after the other: wall and CPU ms per record, and the CPU
    split into reading the file and the per-record signal path."""
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        prepare_record(path.stem, str(path), None, config)
    wall, cpu = (time.perf_counter() - wall) / len(files), (time.process_time() - cpu) / len(files)
    started = time.process_time()
    ecgs = [read_ecg(path) for path in files]
    read = (time.process_time() - started) / len(files)
    started = time.process_time()
    for path, ecg in zip(files, ecgs):
        prepare_record(path.stem, str(path), None, config, ecg=ecg)
    analyse = (time.process_time() - started) / len(files)
    return {"in_process_ms_per_record": 1000 * wall, "in_process_records_per_s_per_core": 1 / wall,
            "in_process_cpu_ms_per_record": 1000 * cpu, "in_process_records_per_cpu_s": 1 / cpu,
            "read_ecg_cpu_ms": 1000 * read, "process_record_without_read_cpu_ms": 1000 * analyse}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prepare_speed.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-prepare-bench-"))
    results: dict = {"n": args.n, "cores": len(os.sched_getaffinity(0)), "loadavg_before": os.getloadavg()}
    try:
        generate_cohort(work / "data", SynthConfig(n=args.n, seed=0, workers=args.workers), progress=False)
        cohort = work / "data" / "cohort.yaml"
        files = sorted((work / "data" / "ecg").glob("*.xml"))
        config = PrepareConfig()
        prepare_record("warm-up", str(files[0]), None, config)  # imports neurokit2 once, as each worker does
        results.update(in_process(files[:200], config))
        for workers in (1, args.workers):
            for beats in (True, False):
                out = work / f"store-{workers}-{beats}"
                started, cpu = time.perf_counter(), cpu_seconds()
                summary = prepare_store(cohort, out, PrepareConfig(store_beats=beats), workers=workers,
                                        progress=False)
                seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
                results[f"end_to_end_workers{workers}_beats{int(beats)}"] = {
                    "seconds": seconds, "records_per_s": args.n / seconds,
                    "records_per_s_per_core": args.n / seconds / workers,
                    "cpu_s": cpu, "cpu_ms_per_record": 1000 * cpu / args.n, "records_per_cpu_s": args.n / cpu,
                    "store_mb": sum(f.stat().st_size for f in out.glob("*.*")) / 1e6,
                    "status_counts": summary["status_counts"],
                }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
