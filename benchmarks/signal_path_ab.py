"""A/B timing of the per-record path against another source tree, alternated in one run (a shared machine's load
changes by the minute, so the two trees take turns, each round in fresh processes).

Per record, in CPU milliseconds of one process (``time.process_time``): reading a CardioSoft file, the per-record
path of ``prepare``/``predict`` on it (``prepare_record``, ``process_record`` in older trees, of the record
already read), and ``measure`` with the
per-beat table (``measure_file``, reading included) on CardioSoft files and on the WFDB records of LUDB. The
median over rounds is reported with the load average before and after. Writes
``benchmarks/results/signal_path_ab.json``::

    .venv/bin/python benchmarks/signal_path_ab.py --compare-src OTHER/src --compare-label "main at abc1234"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LUDB = ROOT.parent / "shared" / "data" / "ludb" / "data"


def worker(folder: Path, n: int) -> dict[str, float]:
    """One round in this process: CPU ms per record of each step (first a warm-up of each)."""
    from aiecg.data import prepare
    from aiecg.data.prepare import PrepareConfig
    from aiecg.io import read_ecg
    from aiecg.workflows.measure import MeasureTask, measure_file

    process_record = getattr(prepare, "prepare_record", None) or prepare.process_record  # renamed in main
    files = sorted(folder.glob("*.xml"))[:n]
    ludb = sorted(LUDB.glob("*.hea"))[:n] if LUDB.exists() else []
    config = PrepareConfig()
    process_record("warm-up", str(files[0]), None, config)
    measure_file(MeasureTask(str(files[0])), with_beats=True)

    def per_record(fn, items) -> float:
        started = time.process_time()
        for item in items:
            fn(item)
        return 1000 * (time.process_time() - started) / max(1, len(items))

    ecgs = [read_ecg(f) for f in files]
    out = {"read_cardiosoft": per_record(read_ecg, files),
           "process_record_without_read": per_record(
               lambda pair: process_record(pair[0].stem, str(pair[0]), None, config, ecg=pair[1]),
               list(zip(files, ecgs))),
           "measure_with_beats_cardiosoft": per_record(
               lambda f: measure_file(MeasureTask(str(f)), with_beats=True), files)}
    if ludb:
        out["read_wfdb_ludb"] = per_record(read_ecg, ludb)
        out["measure_with_beats_ludb"] = per_record(lambda f: measure_file(MeasureTask(str(f)), with_beats=True),
                                                    ludb)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-src", type=Path, help="the other tree's src folder (required)")
    parser.add_argument("--compare-label", default="the compared tree", help="how the results name it")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--n", type=int, default=100, help="records per step and round")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "signal_path_ab.json")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n)))
        return
    if args.compare_src is None:
        parser.error("--compare-src is required")
    from aiecg.synth import SynthConfig, generate_cohort

    trees = {args.label: str(ROOT / "src"), args.compare_label: str(args.compare_src.resolve())}
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="aiecg-ab-") as work:
        generate_cohort(Path(work) / "data", SynthConfig(n=args.n, seed=0), progress=False)
        for r in range(args.rounds):
            for label, src in (trees.items() if r % 2 == 0 else reversed(trees.items())):
                done = subprocess.run([sys.executable, __file__, "--worker", str(Path(work) / "data" / "ecg"),
                                       "--n", str(args.n)], env={**os.environ, "PYTHONPATH": src},
                                      capture_output=True, text=True, check=True)
                rounds[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary = {label: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
               for label, runs in rounds.items()}
    results = {"what": "CPU ms per record, median over alternated rounds (fresh processes each)",
               "n": args.n, "rounds": args.rounds, "cores": len(os.sched_getaffinity(0)),
               "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "median_ms": summary,
               "ratio_new_over_compared": {key: round(summary[args.label][key] / summary[args.compare_label][key], 3)
                                           for key in summary[args.label]},
               "rounds_ms": {label: [{k: round(v, 3) for k, v in r.items()} for r in runs]
                             for label, runs in rounds.items()}}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("loadavg_before", "loadavg_after", "median_ms",
                                               "ratio_new_over_compared")}, indent=2))


if __name__ == "__main__":
    main()
