"""Start-up time of the command line (issue 21): ``aiecg --help`` and the help of a few commands, wall-clock
seconds of a fresh interpreter (median of ``--repeats``), and whether torch was imported.

``--compare-src DIR`` times another source tree in the same run (e.g. a worktree of an earlier commit), under the
same machine load. Writes ``benchmarks/results/cli_startup.json``::

    .venv/bin/python benchmarks/cli_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["measure", "--help"], ["prepare", "--help"], ["train", "--help"])
PROBE = ("import sys\nimport aiecg.cli\ntry:\n    aiecg.cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "print('torch' in sys.modules, file=sys.stderr)")


def time_commands(src: Path, repeats: int) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = {}
    for argv in COMMANDS:
        seconds, torch_loaded = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True,
                                    check=True)
            seconds.append(time.perf_counter() - started)
            torch_loaded = result.stderr.strip().splitlines()[-1] == "True"
        out[" ".join(["aiecg", *argv])] = {"median_s": round(statistics.median(seconds), 3),
                                            "min_s": round(min(seconds), 3), "imports_torch": torch_loaded}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare-src", type=Path, help="another source tree to time in the same run")
    parser.add_argument("--compare-label", default="the compared tree",
                        help="what the compared tree is, for the result (e.g. 'main at c799d1e')")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli_startup.json")
    args = parser.parse_args()
    result: dict = {"loadavg_start": os.getloadavg(), "cores": len(os.sched_getaffinity(0)),
                    "aiecg": time_commands(ROOT / "src", args.repeats)}
    if args.compare_src:
        result["compare_src"] = args.compare_label
        result["compare"] = time_commands(args.compare_src.resolve(), args.repeats)
    result["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
