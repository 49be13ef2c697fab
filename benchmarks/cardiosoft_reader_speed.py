"""CardioSoft XML reader speed (issue 12): records per second on one core, vectorised sample parsing against the
general per-value parser (the reader before issue 12), on the real UK Biobank example and on synthetic CardioSoft
files written by ``aiecg.io.cardiosoft.write_cardiosoft`` (through the synthetic cohort generator). Both parsers
must give identical arrays (checked on every file). Writes ``benchmarks/results/cardiosoft_reader_speed.json``::

    PYTHONPATH=src python benchmarks/cardiosoft_reader_speed.py --n 200 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from defusedxml import ElementTree as SafeET

from aiecg.io import cardiosoft
from aiecg.synth import SynthConfig, generate_cohort

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "formats" / "ukb_cardiosoft" / "example-XML1.xml"


def _rate(files: list[Path], repeats: int) -> float:
    """Best-of-``repeats`` records per second reading every file once per repeat."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for path in files:
            cardiosoft.read_cardiosoft(path)
        best = min(best, time.perf_counter() - started)
    return len(files) / best


def _general_parser() -> object:
    """Switch the reader to the per-value parser only (the reader as it was before issue 12); returns the undo."""
    fast = cardiosoft._integer_samples
    cardiosoft._integer_samples = lambda text: None
    return fast


def measure(files: list[Path], repeats: int) -> dict[str, float]:
    for path in files:  # identical values from both parsers, on every file
        vectorised = cardiosoft.read_cardiosoft(path)
        undo = _general_parser()
        try:
            general = cardiosoft.read_cardiosoft(path)
        finally:
            cardiosoft._integer_samples = undo
        assert np.array_equal(vectorised.signal, general.signal) and np.array_equal(vectorised.median, general.median)
    fast = _rate(files, repeats)
    undo = _general_parser()
    try:
        slow = _rate(files, repeats)
    finally:
        cardiosoft._integer_samples = undo
    started = time.perf_counter()
    for _ in range(repeats):
        for path in files:
            SafeET.parse(path)
    xml_ms = 1000 * (time.perf_counter() - started) / (repeats * len(files))
    return {"files": len(files), "records_per_s_vectorised": round(fast, 1), "records_per_s_general": round(slow, 1),
            "ms_per_record_vectorised": round(1000 / fast, 2), "ms_per_record_general": round(1000 / slow, 2),
            "speed_up": round(fast / slow, 2), "xml_parse_only_ms": round(xml_ms, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="synthetic CardioSoft files")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cardiosoft_reader_speed.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    real = measure([REAL] * 20, args.repeats)
    with tempfile.TemporaryDirectory(prefix="aiecg-cardiosoft-bench-") as tmp:
        generate_cohort(Path(tmp) / "data", SynthConfig(n=args.n, seed=0, workers=1), progress=False)
        files = sorted((Path(tmp) / "data" / "ecg").glob("*.xml"))
        assert files and cardiosoft.sniff(files[0].read_bytes()[:4096])
        synthetic = measure(files, args.repeats)
    report = {
        "benchmark": "cardiosoft_reader_speed",
        "command": "PYTHONPATH=src python benchmarks/cardiosoft_reader_speed.py --n "
                   f"{args.n} --repeats {args.repeats}",
        "what": "read_cardiosoft (XML parse, samples, median beat, measurements, checks) on one core, best of repeats",
        "real_ukb_example": real, "synthetic": synthetic,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
