"""Fuzz campaign: every reader against thousands of damaged copies of the real files in ../shared/data.

Each damaged file comes from ``aiecg.io.fuzz.damage(original, seed)``; seeds are ``base_seed * 10**6 + i``, so
every outcome is replayable. Reads run in worker subprocesses, a batch of mutations each, under a memory limit;
the parent watches every single read with a timeout, so a hang (killed after ``--timeout`` s) or a crash
(the worker dies on a signal) is counted against the mutation that caused it and the batch resumes after it.

Outcomes per case and per format: ``ecg`` (a valid ECG), ``read_error`` (ECGReadError), ``escape`` (any other
exception, or an ECG that breaks the ECG invariants), ``hang``, ``crash``; and the share of read errors whose
reason is worded by the package (no library exception text before the ``[library: ...]`` detail).

    PYTHONPATH=src python benchmarks/fuzz_readers.py --mutations 1000 --out benchmarks/results/fuzz_readers.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

FORMAT_FILES = [  # (case name, format, path under shared/data, companions copied intact)
    ("cardiosoft", "cardiosoft", "formats/ukb_cardiosoft/example-XML1.xml", ()),
    ("muse", "muse", "formats/muse/MUSE_20200923_093504_79000_example.xml", ()),
    ("hl7_aecg", "hl7_aecg", "formats/hl7_aecg/subject1_0.xml", ()),
    ("dicom_ge1", "dicom", "formats/dicom/example-DICOM1.dcm", ()),
    ("dicom_ge2", "dicom", "formats/dicom/example-DICOM2.dcm", ()),
    ("dicom_mortara", "dicom", "formats/dicom/pydicom_waveform_ecg.dcm", ()),
    ("scp_2007", "scp", "formats/scp/ECG_20070321_110542_191010101010.SCP", ()),
    ("scp_2017", "scp", "formats/scp/ECG_20170504_163507_123456789.SCP", ()),
    ("scp_example", "scp", "formats/scp/Example.scp", ()),
    ("scp_demo_corrupt", "scp", "formats/scp/demo.scp", ()),
    ("sierra_129", "philips_sierra", "formats/philips_sierra/129DYPRG.XML", ()),
    ("sierra_2020", "philips_sierra", "formats/philips_sierra/2020-5-18_15-48-11.xml", ()),
    ("ptbxl_hea", "wfdb", "ptbxl/records500/00841_hr.hea", ("ptbxl/records500/00841_hr.dat",)),
    ("ptbxl_dat", "wfdb", "ptbxl/records500/00841_hr.dat", ("ptbxl/records500/00841_hr.hea",)),
    ("ptbxl100_dat", "wfdb", "ptbxl/records100/00841_lr.dat", ("ptbxl/records100/00841_lr.hea",)),
    ("cinc_hea", "wfdb", "cinc2021/JS20000.hea", ("cinc2021/JS20000.mat",)),
    ("cinc_mat", "wfdb", "cinc2021/JS20000.mat", ("cinc2021/JS20000.hea",)),
]
"""Real files; the array formats (MATLAB v5/v4, .npy, .npz, .csv) are written from the PTB-XL record."""

_LIBRARY_TEXT = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|could not make sense of this file")


def worded_by_package(reason: str) -> bool:
    """True when the reason's own words (before any ``[library: ...]`` detail) carry no library exception text."""
    from aiecg.io.checks import LIBRARY_MARK

    return _LIBRARY_TEXT.search(reason.split(LIBRARY_MARK, 1)[0]) is None


def build_sources(folder: Path) -> list[dict]:
    """Copy the real files into ``folder`` and write the array-format files; return the case list."""
    import numpy as np
    import scipy.io

    from aiecg.ecg import STANDARD_LEADS
    from aiecg.io import read_ecg

    cases = []
    for name, fmt, rel, companions in FORMAT_FILES:
        case_dir = folder / name
        case_dir.mkdir(parents=True)
        for item in (rel, *companions):
            shutil.copy(DATA / item, case_dir / Path(item).name)
        cases.append({"name": name, "format": fmt, "target": str(case_dir / Path(rel).name), "options": {}})
    record = read_ecg(DATA / "ptbxl" / "records500" / "00841_hr.hea")
    rows = [record.lead(n) for n in STANDARD_LEADS] + [record.lead("V6"), record.lead("aVF"), -record.lead("V2")]
    ship = np.rint(np.stack(rows) * 1000).astype(np.int16)
    arrays = {
        "matlab_v5z": ("matlab", "ship.mat", lambda p: scipy.io.savemat(p, {"H12": ship}, do_compression=True)),
        "matlab_v5": ("matlab", "ship.mat", lambda p: scipy.io.savemat(p, {"H12": ship, "info": "SHIP"})),
        "matlab_v4": ("matlab", "ship.mat", lambda p: scipy.io.savemat(p, {"H12": ship.astype(float)}, format="4")),
        "npy": ("npy", "record.npy", lambda p: np.save(p, record.signal)),
        "npz": ("npz", "record.npz", lambda p: np.savez(p, signal=record.signal, leads=np.array(record.leads),
                                                         fs=record.fs)),
        "csv": ("csv", "record.csv", lambda p: np.savetxt(p, record.signal[:, :1500].T, delimiter=",",
                                                          header=",".join(record.leads), comments="", fmt="%.3f")),
    }
    options = {"npy": {"leads": list(STANDARD_LEADS), "fs": 500.0}, "csv": {"fs": 500.0}}
    for name, (fmt, filename, write) in arrays.items():
        case_dir = folder / name
        case_dir.mkdir()
        write(case_dir / filename)
        cases.append({"name": name, "format": fmt, "target": str(case_dir / filename),
                      "options": options.get(name, {})})
    return cases


def _check_ecg(ecg) -> str | None:
    """What is wrong with a returned ECG, or None."""
    import numpy as np

    from aiecg.ecg import ECG, KNOWN_LEADS
    from aiecg.io.checks import MAX_FS, MIN_DURATION_S, MIN_FS

    if not isinstance(ecg, ECG):
        return f"returned {type(ecg).__name__}"
    if ecg.signal.dtype != np.float32 or not np.isfinite(ecg.signal).all():
        return "non-finite or non-float32 signal"
    if not (MIN_FS <= ecg.fs <= MAX_FS) or ecg.duration_s < MIN_DURATION_S or not set(ecg.leads) <= KNOWN_LEADS:
        return f"implausible ECG (fs {ecg.fs}, {ecg.duration_s} s)"
    if ecg.median is not None and not np.isfinite(ecg.median).all():
        return "non-finite median"
    return None


def worker(case: dict, start: int, stop: int, base_seed: int, memory_gb: float) -> None:
    """Read mutations ``start..stop-1`` of one case; print ``B i`` before and ``R i {json}`` after each read."""
    import warnings

    from aiecg.errors import ECGReadError
    from aiecg.io import get_reader
    from aiecg.io.fuzz import damage

    limit = int(memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    target = Path(case["target"])
    original = target.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="fuzz_"))
    for sibling in target.parent.iterdir():
        if sibling != target:
            shutil.copy(sibling, work / sibling.name)
    damaged_path = work / target.name
    read = get_reader(case["format"]).read
    try:
        for i in range(start, stop):
            seed = base_seed * 10**6 + i
            damaged_path.write_bytes(damage(original, seed))
            print(f"B {i}", flush=True)
            began = time.perf_counter()
            try:
                problem = _check_ecg(read(damaged_path, **case["options"]))
                result = {"outcome": "ecg"} if problem is None else {"outcome": "escape", "what": problem}
            except ECGReadError as exc:
                result = {"outcome": "read_error", "worded": worded_by_package(exc.reason),
                          "reason": exc.reason.replace(str(work), "<dir>")[:200]}
            except BaseException as exc:  # noqa: BLE001 - an escape is what this campaign counts
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                result = {"outcome": "escape", "what": f"{type(exc).__name__}: {str(exc)[:160]}".replace(
                    str(work), "<dir>"),
                          "where": f"{Path(frame.filename).name}:{frame.lineno}"}
            result["seconds"] = round(time.perf_counter() - began, 4)
            print(f"R {i} {json.dumps(result)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_case(case: dict, mutations: int, base_seed: int, timeout: float, memory_gb: float, batch: int,
             src: Path) -> list[dict]:
    """All mutations of one case through worker subprocesses; hangs and crashes are outcomes, not failures."""
    results: list[dict] = []
    next_index = 0
    env = dict(os.environ, PYTHONPATH=str(src))
    while next_index < mutations:
        stop = min(next_index + batch, mutations)
        command = [sys.executable, __file__, "--worker", json.dumps(case), str(next_index), str(stop),
                   str(base_seed), str(memory_gb)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        current, deadline = None, time.monotonic() + 120.0  # start-up allowance (imports)
        while True:
            if not selector.select(timeout=max(deadline - time.monotonic(), 0.01)):
                if time.monotonic() < deadline:
                    continue
                process.kill()
                process.wait()
                if current is None:
                    raise RuntimeError(f"worker for {case['name']} did not start")
                results.append({"i": current, "outcome": "hang", "seconds": timeout})
                next_index = current + 1
                break
            line = process.stdout.readline()
            if not line:  # the worker ended: finished, or crashed in the middle of a read
                code = process.wait()
                if current is not None:
                    results.append({"i": current, "outcome": "crash", "returncode": code})
                    next_index = current + 1
                elif code != 0:
                    raise RuntimeError(f"worker for {case['name']} failed outside a read (exit {code})")
                else:
                    next_index = stop
                break
            kind, index, *rest = line.rstrip("\n").split(" ", 2)
            if kind == "B":
                current, deadline = int(index), time.monotonic() + timeout
            elif kind == "R":
                results.append({"i": int(index), **json.loads(rest[0])})
                current, deadline = None, time.monotonic() + 30.0
        selector.close()
        process.stdout.close()
    return results


def summarise(results: list[dict]) -> dict:
    counts = Counter(r["outcome"] for r in results)
    errors = [r for r in results if r["outcome"] == "read_error"]
    worded = sum(r["worded"] for r in errors)
    return {
        "mutations": len(results),
        **{k: counts.get(k, 0) for k in ("ecg", "read_error", "escape", "hang", "crash")},
        "read_errors_worded_by_package": worded,
        "worded_share": round(worded / len(errors), 4) if errors else None,
        "median_read_ms": round(1000 * sorted(r["seconds"] for r in results)[len(results) // 2], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mutations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--memory-gb", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz_readers.json")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="the aiecg source tree the workers import (another checkout, to compare readers)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, start, stop, seed, memory = args.worker
        worker(json.loads(case), int(start), int(stop), int(seed), float(memory))
        return
    sys.path.insert(0, str(ROOT / "src"))
    began = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fuzz_sources_") as tmp:
        cases = build_sources(Path(tmp))
        if args.cases:
            cases = [c for c in cases if c["name"] in args.cases]
        per_case, per_format, examples = {}, {}, {}
        all_results: dict[str, list[dict]] = {}
        for case in cases:
            results = run_case(case, args.mutations, args.seed, args.timeout, args.memory_gb, args.batch, args.src)
            all_results[case["name"]] = results
            per_case[case["name"]] = {"format": case["format"], **summarise(results)}
            bad = [r for r in results if r["outcome"] in ("escape", "hang", "crash")]
            unworded = [r for r in results if r["outcome"] == "read_error" and not r["worded"]]
            examples[case["name"]] = {
                "escapes_hangs_crashes": [{**r, "seed": args.seed * 10**6 + r["i"]} for r in bad[:10]],
                "unworded_read_errors": Counter(r["reason"][:120] for r in unworded).most_common(5),
                "top_read_errors": Counter(r["reason"].split(" [library: ")[0][:90] for r in results
                                           if r["outcome"] == "read_error").most_common(8),
            }
            print(case["name"], per_case[case["name"]], flush=True)
        formats = sorted({c["format"] for c in cases})
        for fmt in formats:
            merged = [r for c in cases if c["format"] == fmt for r in all_results[c["name"]]]
            per_format[fmt] = summarise(merged)
        merged = [r for results in all_results.values() for r in results]
    report = {
        "benchmark": "fuzz_readers",
        "command": "PYTHONPATH=src python benchmarks/fuzz_readers.py " + " ".join(sys.argv[1:]),
        "replay": "aiecg.io.fuzz.damage(original_bytes, seed) recreates a damaged file; seed = base_seed*10**6 + i",
        "mutations_per_case": args.mutations, "base_seed": args.seed, "timeout_s": args.timeout,
        "memory_limit_gb": args.memory_gb,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "wall_s": round(time.time() - began, 1),
        "total": summarise(merged), "per_format": per_format, "per_case": per_case, "examples": examples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps(report["total"]), "->", args.out)


if __name__ == "__main__":
    main()
