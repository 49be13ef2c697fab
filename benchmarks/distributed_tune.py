"""Beyond one process (issue 15): DDP training throughput with 1 vs 2 torchrun processes, and the wall time of a
20-trial ``aiecg tune`` search with 1 vs 2 workers sharing one journal-file study.

Writes ``benchmarks/results/distributed_tune.json``::

    PYTHONPATH=src .venv/bin/python benchmarks/distributed_tune.py

DDP: the reference FCN (128/256/128) on random 8 x 400 inputs, global batch 32; samples/s is the training set
size over the median epoch time after the first (warm-up) epoch, validation included. Each process runs one
torch thread; the one-process run is also timed with two threads (the whole machine for one process).
Search: a synthetic cohort, the reference space, 3 epochs per trial, Hyperband; each worker one torch thread.
The machine is shared: the load average before and after each measurement is recorded beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "OMP_NUM_THREADS": str(threads)}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def ddp_worker(out: Path, n: int, epochs: int) -> None:
    """Run inside torchrun: train, and let rank 0 write the per-epoch times."""
    import numpy as np
    import torch

    from aiecg.data.dataset import Arrays, ECGDataset
    from aiecg.models import create_model
    from aiecg.train.loop import FitConfig, fit
    from aiecg.train.losses import LogCoshLoss

    def arrays(rows: int, seed: int) -> Arrays:
        rng = np.random.default_rng(seed)
        return Arrays(np.arange(rows).astype(str), np.zeros(rows, int),
                      rng.standard_normal((rows, 8, 400)).astype(np.float32), np.zeros((rows, 0), np.float32),
                      rng.standard_normal((rows, 1)).astype(np.float32))

    torch.manual_seed(0)
    model = create_model("fcn", 8, 400, 0, 1)
    result = fit(model, ECGDataset(arrays(n, 0)), ECGDataset(arrays(64, 1)), LogCoshLoss(),
                 FitConfig(batch_size=32, max_epochs=epochs, early_stopping=epochs + 1, seed=0), None,
                 progress=False)
    if int(os.environ.get("RANK", 0)) == 0:
        out.write_text(json.dumps({"epoch_seconds": [h["seconds"] for h in result.history],
                                   "threads": torch.get_num_threads()}))


def ddp_throughput(processes: int, threads: int, n: int, epochs: int, scratch: Path) -> dict:
    out = scratch / f"ddp_{processes}_{threads}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               __file__, "--ddp-worker", str(out), str(n), str(epochs)]
    before = _load()
    subprocess.run(command, env=_env(threads), check=True, capture_output=True, timeout=1800)
    timed = json.loads(out.read_text())
    seconds = statistics.median(timed["epoch_seconds"][1:])
    return {"processes": processes, "threads_per_process": timed["threads"], "train_samples": n,
            "epoch_seconds": [round(s, 3) for s in timed["epoch_seconds"]], "samples_per_s": round(n / seconds, 1),
            "loadavg_before": before, "loadavg_after": _load()}


def search_wall_time(cohort: Path, workers: int, trials: int, epochs: int, scratch: Path) -> dict:
    journal = scratch / f"study_{workers}.log"
    command = [sys.executable, "-m", "aiecg.cli", "-q", "tune", "--cohort", str(cohort), "--search-only",
               "--trials", str(trials), "--epochs", str(epochs), "--storage", f"journal://{journal}",
               "--out", str(scratch / f"tune_{workers}"), "--heartbeat", "5"]
    before = _load()
    started = time.perf_counter()
    processes = [subprocess.Popen([*command, "--worker-id", str(w)], env=_env(1), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) for w in range(workers)]
    outputs = [p.communicate(timeout=3600)[0] for p in processes]
    wall = time.perf_counter() - started
    if any(p.returncode for p in processes):
        raise RuntimeError("a tune worker failed:\n" + "\n".join(outputs))
    reports = [json.loads(o[o.index("{"):]) for o in outputs]
    with open(scratch / f"tune_{workers}" / "trials.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    return {"workers": workers, "trials": trials, "epochs_per_trial": epochs, "wall_seconds": round(wall, 1),
            # the trials differ between runs (other samples of the space), so the work done is recorded too
            "epochs_trained": sum(int(row["epochs"]) for row in table),
            "trial_seconds_sum": round(sum(float(row["duration_s"]) for row in table), 1),
            "trials_per_worker": [r["search"]["trials_run"] for r in reports],
            "finished": reports[0]["search"]["finished"], "pruned": max(r["search"]["pruned"] for r in reports),
            "loadavg_before": before, "loadavg_after": _load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ddp-worker", nargs=3, metavar=("OUT", "N", "EPOCHS"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1024, help="DDP training samples")
    parser.add_argument("--ddp-epochs", type=int, default=3)
    parser.add_argument("--cohort-n", type=int, default=120, help="participants of the search's cohort")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "distributed_tune.json"))
    parser.add_argument("--only", choices=["ddp", "search"], help="rerun one part, keeping the other's result")
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(Path(args.ddp_worker[0]), int(args.ddp_worker[1]), int(args.ddp_worker[2]))
        return
    out = Path(args.out)
    result: dict = json.loads(out.read_text()) if args.only and out.exists() else {}
    result.update({"cpu_count": os.cpu_count(), "loadavg_start": _load()})
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.only in (None, "ddp"):
            result["ddp"] = [ddp_throughput(p, t, args.n, args.ddp_epochs, scratch)
                             for p, t in ((1, 1), (2, 1), (1, 2))]
        if args.only in (None, "search"):
            data = scratch / "data"
            for step in (["synth", "--out", str(data), "--n", str(args.cohort_n), "--seed", "1", "--workers", "2"],
                         ["prepare", "--cohort", str(data / "cohort.yaml"), "--workers", "2"]):
                subprocess.run([sys.executable, "-m", "aiecg.cli", "-q", *step], env=_env(1), check=True,
                               capture_output=True)
            result["search"] = [search_wall_time(data / "cohort.yaml", w, args.trials, args.epochs, scratch)
                                for w in (1, 2)]
    result["loadavg_end"] = _load()
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
