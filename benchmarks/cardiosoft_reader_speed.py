"""CardioSoft XML reader speed (issue 12): records per second on one core, vectorised sample parsing against the
general per-value parser (the reader before issue 12), on the real UK Biobank example and on synthetic CardioSoft
files written by ``aiecg.io.cardiosoft.write_cardiosoft`` (through the synthetic cohort generator). Both parsers
must give identical arrays (checked on every file). Wall-clock and CPU time (``time.process_time``, this process
only: the number to compare on a shared machine) per record, best of the repeats, and the load average.
Writes ``benchmarks/results/cardiosoft_reader_speed.json``::

    PYTHONPATH=src python benchmarks/cardiosoft_reader_speed.py --n 200 --repeats 5

With ``PYTHONPATH`` set to another checkout's ``src`` (e.g. main before a change) it measures that reader, for a
baseline; ``--label`` names it in the results.
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


def _where(path: Path) -> str:
    """``path`` relative to the repository (or its parent): no machine path in the results."""
    for base in (ROOT, ROOT.parent):
        if path.resolve().is_relative_to(base):
            return str(path.resolve().relative_to(base))
    return path.name
REAL = ROOT.parent / "shared" / "data" / "formats" / "ukb_cardiosoft" / "example-XML1.xml"


def _rate(files: list[Path], repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` records per second (wall-clock) and CPU ms per record, reading every file once per
    repeat."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        for path in files:
            cardiosoft.read_cardiosoft(path)
        best, best_cpu = min(best, time.perf_counter() - started), min(best_cpu, time.process_time() - cpu)
    return len(files) / best, 1000 * best_cpu / len(files)


_FAST_PATHS = ("_integer_values", "_integer_samples")
"""The reader's vectorised parse functions (``_integer_values`` from the one-pass reader on); each returns None
for text it leaves to the general parser."""


def _general_parser() -> dict:
    """Switch the reader to the per-value parser only (the reader as it was before issue 12); returns the undo."""
    undo = {name: getattr(cardiosoft, name) for name in _FAST_PATHS if hasattr(cardiosoft, name)}
    for name in undo:
        setattr(cardiosoft, name, lambda text: None)
    return undo


def _restore(undo: dict) -> None:
    for name, function in undo.items():
        setattr(cardiosoft, name, function)


def measure(files: list[Path], repeats: int, general_repeats: int) -> dict[str, float]:
    for path in files:  # identical values from both parsers, on every file
        vectorised = cardiosoft.read_cardiosoft(path)
        undo = _general_parser()
        try:
            general = cardiosoft.read_cardiosoft(path)
        finally:
            _restore(undo)
        assert np.array_equal(vectorised.signal, general.signal) and np.array_equal(vectorised.median, general.median)
    fast, fast_cpu = _rate(files, repeats)
    undo = _general_parser()
    try:
        slow, slow_cpu = _rate(files, general_repeats)
    finally:
        _restore(undo)
    parse = getattr(cardiosoft, "_parse_xml", None)  # the reader's own XML step (defusedxml before it existed)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        for path in files:
            parse(path.read_bytes()) if parse is not None else SafeET.parse(path)
    xml_ms = 1000 * (time.perf_counter() - started) / (repeats * len(files))
    xml_cpu_ms = 1000 * (time.process_time() - cpu) / (repeats * len(files))
    return {"files": len(files), "records_per_s_vectorised": round(fast, 1), "records_per_s_general": round(slow, 1),
            "ms_per_record_vectorised": round(1000 / fast, 2), "ms_per_record_general": round(1000 / slow, 2),
            "cpu_ms_per_record_vectorised": round(fast_cpu, 3), "cpu_ms_per_record_general": round(slow_cpu, 3),
            "speed_up": round(fast / slow, 2), "cpu_speed_up": round(slow_cpu / fast_cpu, 2),
            "xml_parse_only_ms": round(xml_ms, 2), "xml_parse_only_cpu_ms": round(xml_cpu_ms, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="synthetic CardioSoft files")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default="", help="what reader this is (recorded in the results)")
    parser.add_argument("--general-repeats", type=int, default=None,
                        help="repeats for the general parser (slow; default: --repeats)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cardiosoft_reader_speed.json")
    args = parser.parse_args()
    general_repeats = args.general_repeats or args.repeats
    load_before = os.getloadavg()
    real = measure([REAL] * 20, args.repeats, general_repeats)
    with tempfile.TemporaryDirectory(prefix="aiecg-cardiosoft-bench-") as tmp:
        generate_cohort(Path(tmp) / "data", SynthConfig(n=args.n, seed=0, workers=1), progress=False)
        files = sorted((Path(tmp) / "data" / "ecg").glob("*.xml"))
        assert files and cardiosoft.sniff(files[0].read_bytes()[:4096])
        synthetic = measure(files, args.repeats, general_repeats)
    report = {
        "benchmark": "cardiosoft_reader_speed",
        "command": "PYTHONPATH=src python benchmarks/cardiosoft_reader_speed.py --n "
                   f"{args.n} --repeats {args.repeats} --general-repeats {general_repeats}",
        "reader": args.label or "aiecg.io.cardiosoft from " + _where(Path(cardiosoft.__file__)),
        "what": "read_cardiosoft (XML parse, samples, median beat, measurements, checks) on one core, best of repeats",
        "real_ukb_example": real, "synthetic": synthetic,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
