"""Peak memory per stage of ``make demo`` (issue 19): synth, prepare, train, evaluate, explain, report.

The demo runs in this process (``run_demo`` with a stage hook). At the start of every stage the kernel's peak
resident set of this process is reset (``/proc/self/clear_refs`` with ``5``, Linux 4.0+) and read back at the
next stage (``VmHWM``), so each figure is that stage's own peak, not the run's so far; worker processes (synth and
prepare pools) are separate processes, reported as the largest child's peak (``RUSAGE_CHILDREN``). The peak of the
whole demo, what ``/usr/bin/time -v`` reports, is the largest of these. Writes
``benchmarks/results/memory_stages.json``::

    .venv/bin/python benchmarks/memory_stages.py            # the demo's 2,500 participants
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

ROOT = Path(__file__).resolve().parents[1]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class StageMeter:
    """Called at each stage start: closes the previous stage (its peak RSS and time) and opens the next."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.current: str | None = None
        self.started = 0.0
        self.resets = True

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.current is not None:
            self.rows.append({"stage": self.current, "peak_rss_mb": round(_status_kib("VmHWM") / 1024, 1),
                              "rss_after_mb": round(_status_kib("VmRSS") / 1024, 1),
                              "largest_child_so_far_mb": round(
                                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
                              "seconds": round(now - self.started, 1)})
        self.resets = _reset_peak() and self.resets
        self.current, self.started = (None if name == "done" else name), now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="participants (default: the demo's)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs at most (default: the demo's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory_stages.json")
    args = parser.parse_args()
    from aiecg.workflows.demo import DEMO_N, DemoConfig, run_demo

    work = Path(tempfile.mkdtemp(prefix="aiecg-memory-"))
    meter = StageMeter()
    load = os.getloadavg()
    try:
        summary = run_demo(DemoConfig(out=work / "demo", n=args.n, max_epochs=args.epochs), progress=False,
                           on_stage=meter)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"n": args.n or DEMO_N, "epochs": args.epochs, "loadavg_start": load, "loadavg_end": os.getloadavg(),
              "peak_reset_per_stage": meter.resets, "stages": meter.rows,
              "demo_peak_rss_mb": max(row["peak_rss_mb"] for row in meter.rows),
              "largest_worker_mb": meter.rows[-1]["largest_child_so_far_mb"], "test": summary["test"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    for row in meter.rows:
        print(f"{row['stage']:>9}: peak {row['peak_rss_mb']:8.1f} MB  after {row['rss_after_mb']:8.1f} MB  "
              f"{row['seconds']:6.1f} s")
    print("demo peak", result["demo_peak_rss_mb"], "MB; largest worker", result["largest_worker_mb"], "MB")


if __name__ == "__main__":
    main()
