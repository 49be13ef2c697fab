"""Throughput of CardioSoft XML -> store (read, filter, beats, median, measurements, QC), records per second per
core. Writes ``benchmarks/results/prepare_speed.json``::

    .venv/bin/python benchmarks/prepare_speed.py --n 1000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from aiecg.data.prepare import PrepareConfig, prepare_store, process_record
from aiecg.synth import SynthConfig, generate_cohort

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-prepare-bench-"))
    try:
        generate_cohort(work / "data", SynthConfig(n=args.n, seed=0, workers=args.workers), progress=False)
        cohort = work / "data" / "cohort.yaml"
        files = sorted((work / "data" / "ecg").glob("*.xml"))
        config = PrepareConfig()
        process_record("warm-up", str(files[0]), None, config)  # imports neurokit2 once, as each worker does
        started = time.perf_counter()
        for path in files[:200]:
            process_record(path.stem, str(path), None, config)
        per_record_s = (time.perf_counter() - started) / min(200, len(files))
        results = {"n": args.n, "in_process_ms_per_record": 1000 * per_record_s,
                   "in_process_records_per_s_per_core": 1 / per_record_s}
        for workers in (1, args.workers):
            for beats in (True, False):
                out = work / f"store-{workers}-{beats}"
                started = time.perf_counter()
                summary = prepare_store(cohort, out, PrepareConfig(store_beats=beats), workers=workers,
                                        progress=False)
                seconds = time.perf_counter() - started
                results[f"end_to_end_workers{workers}_beats{int(beats)}"] = {
                    "seconds": seconds, "records_per_s": args.n / seconds,
                    "records_per_s_per_core": args.n / seconds / workers,
                    "store_mb": sum(f.stat().st_size for f in out.glob("*.*")) / 1e6,
                    "status_counts": summary["status_counts"],
                }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_file = ROOT / "benchmarks" / "results" / "prepare_speed.json"
    out_file.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
