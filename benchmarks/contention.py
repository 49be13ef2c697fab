"""Fair on shared CPUs (issue 19): one training, then two concurrent trainings, on this machine's cores.

Each training is the real command, ``python -m aiecg.cli train`` (the demo's FCN and target, on a synthetic cohort
prepared once), in its own process; its throughput is the training rows per second of its median epoch
(``epochs.csv``: each epoch's wall time, training and validation). Target: two concurrent runs each keep >= 80% of
half the solo throughput, and the solo throughput does not drop against the code before the thread budget.

``--compare-src DIR`` runs the same protocol a second time against another source tree (for example a worktree of
the commit before the thread budget: ``git worktree add /tmp/before <commit>`` then ``--compare-src
/tmp/before/src``), in the same run of this benchmark, so the two are compared under the same machine load.
Writes ``benchmarks/results/contention.json``::

    .venv/bin/python benchmarks/contention.py --n 2500 --epochs 6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _environment(src: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("AIECG_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    return env


def _start(src: Path, cohort: Path, out: Path, name: str, epochs: int, extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "aiecg.cli", "-q", "train", "--cohort", str(cohort), "--epochs", str(epochs),
               "--no-compare", "--device", "cpu", "--out", str(out), "--name", name, *extra]
    return subprocess.Popen(command, env=_environment(src), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _throughput(run: Path) -> dict:
    epochs = pd.read_csv(run / "epochs.csv")
    metrics = json.loads((run / "metrics.json").read_text())
    rows = metrics["training"]["n_train_samples"]
    seconds = float(statistics.median(epochs["seconds"].iloc[1:] if len(epochs) > 2 else epochs["seconds"]))
    config = yaml.safe_load((run / "config.yaml").read_text())
    return {"train_rows": rows, "median_epoch_s": seconds, "rows_per_s": rows / seconds,
            "epoch_seconds": [round(float(s), 3) for s in epochs["seconds"]],
            "threads_logged": config.get("fit", {}).get("threads")}


def _runs(src: Path, cohort: Path, work: Path, epochs: int, concurrent: int, extra: list[str]) -> list[dict]:
    out = work / f"runs-{concurrent}-{len(list(work.glob('runs-*')))}"
    processes = [_start(src, cohort, out, f"run{k}", epochs, extra) for k in range(concurrent)]
    results = []
    for k, process in enumerate(processes):
        _, stderr = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise SystemExit(f"training {k} failed:\n{stderr[-3000:]}")
        results.append(_throughput(out / f"run{k}"))
    return results


def protocol(src: Path, cohort: Path, work: Path, epochs: int, extra: list[str], label: str) -> dict:
    """Solo, then two concurrent runs; each run's throughput and the fairness ratio. ``label`` names the source
    tree in the result (no machine path is recorded)."""
    load = os.getloadavg()
    solo = _runs(src, cohort, work, epochs, 1, extra)[0]
    pair = _runs(src, cohort, work, epochs, 2, extra)
    half = solo["rows_per_s"] / 2
    return {"src": label, "extra_args": extra, "loadavg_start": load, "loadavg_end": os.getloadavg(),
            "solo": solo, "concurrent": pair,
            "concurrent_share_of_half_solo": [round(run["rows_per_s"] / half, 3) for run in pair],
            "target_met": all(run["rows_per_s"] >= 0.8 * half for run in pair)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2500, help="participants of the synthetic cohort (the demo's)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--compare-src", type=Path, help="another source tree to run the same protocol against")
    parser.add_argument("--compare-label", default="the compared tree",
                        help="what the compared tree is, for the result (e.g. 'main at c799d1e')")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "contention.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-contention-"))
    src = ROOT / "src"
    try:
        data = work / "data"
        env = _environment(src)
        subprocess.run([sys.executable, "-m", "aiecg.cli", "-q", "synth", "--out", str(data), "--n", str(args.n),
                        "--lvh-prevalence", "0.2"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "aiecg.cli", "-q", "prepare", "--cohort", str(data / "cohort.yaml"),
                        "--no-beats"], env=env, check=True, stdout=subprocess.DEVNULL)
        result: dict = {"n": args.n, "epochs": args.epochs, "cores": len(os.sched_getaffinity(0)),
                        "python": platform.python_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "aiecg": protocol(src, data / "cohort.yaml", work, args.epochs, [], "this checkout")}
        if args.compare_src:
            result["compare"] = protocol(args.compare_src.resolve(), data / "cohort.yaml", work, args.epochs, [],
                                         args.compare_label)
            result["solo_vs_compare"] = round(result["aiecg"]["solo"]["rows_per_s"]
                                              / result["compare"]["solo"]["rows_per_s"], 3)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(json.dumps({k: v for k, v in result.items() if k not in ("aiecg", "compare")}, indent=2))
        for key in ("aiecg", "compare"):
            if key in result:
                part = result[key]
                print(key, "solo rows/s", round(part["solo"]["rows_per_s"], 1), "concurrent",
                      [round(r["rows_per_s"], 1) for r in part["concurrent"]], "share of half solo",
                      part["concurrent_share_of_half_solo"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
