"""Fuzz campaign: every reader against thousands of damaged copies of the real files in ../shared/data.

Each damaged file comes from ``aiecg.io.fuzz.damage(original, seed)``; seeds are ``base_seed * 10**6 + i``, so
every outcome is replayable. Reads run in worker subprocesses, a batch of mutations each, under a memory limit;
the parent watches every single read with a timeout, so a hang (killed after ``--timeout`` s) or a crash
(the worker dies on a signal) is counted against the mutation that caused it and the batch resumes after it.

Outcomes per case and per format: ``ecg`` (a valid ECG), ``read_error`` (ECGReadError), ``escape`` (any other
exception, or an ECG that breaks the ECG invariants), ``hang``, ``crash``; and the share of read errors whose
reason is worded by the package (no library exception text before the ``[library: ...]`` detail).

``--surfaces`` attacks the inputs of the newer commands the same way (issue 22), from a tiny synthetic cohort and
a one-epoch model built first: a damaged model bundle (``bundle``), a bundle with one field forged and its
checksum recomputed (``bundle_fields``: every field in turn, junk of many types), a damaged ONNX export
(``onnx``, run on a probe input and compared with the bundle's torch model), a damaged cohort YAML
(``cohort_yaml``) and a damaged cohort table (``clinical_csv``), each loaded as ``predict``, ``measure`` and
``train`` load it. Outcomes: ``ok`` (accepted and right), ``read_error`` (one AiecgError), ``silent_wrong``
(accepted but wrong: other weights or predictions than the intact file's, an ECG path outside the ECG folder,
a kept row with a non-finite value), ``escape``, ``hang``, ``crash``.

    PYTHONPATH=src python benchmarks/fuzz_readers.py --mutations 1000 --out benchmarks/results/fuzz_readers.json
    PYTHONPATH=src python benchmarks/fuzz_readers.py --surfaces --mutations 200 \
        --out benchmarks/results/fuzz_surfaces.json
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


# ------------------------------------------------------------------------------ the newer surfaces (issue 22)
JUNK = (None, -1, 0, 1e39, float("nan"), "", "x" * 300, [], [1, "a"], {}, {"junk": 1}, True, ["I"] * 40)
"""What a forged bundle field is replaced with (by seed)."""


def build_surfaces(folder: Path) -> list[dict]:
    """A 40-participant synthetic cohort, its store, a one-epoch model and its ONNX export; one case per surface."""
    from aiecg.cli import main as aiecg

    data, runs = folder / "data", folder / "runs"
    for argv in (["synth", "--out", str(data), "--n", "40", "--seed", "3", "--workers", "1"],
                 ["prepare", "--cohort", str(data / "cohort.yaml"), "--workers", "1", "--no-beats"],
                 ["train", "--cohort", str(data / "cohort.yaml"), "--epochs", "1", "--out", str(runs), "--name",
                  "fcn"],
                 ["export", "--bundle", str(runs / "fcn" / "model.aiecg"), "--onnx", str(folder / "fcn.onnx")]):
        assert aiecg(["-q", *argv]) == 0, argv
    bundle = str(runs / "fcn" / "model.aiecg")
    return [{"name": "bundle", "surface": "bundle", "target": bundle, "options": {}},
            {"name": "bundle_fields", "surface": "bundle_fields", "target": bundle, "options": {}},
            {"name": "onnx", "surface": "onnx", "target": str(folder / "fcn.onnx"), "options": {"bundle": bundle}},
            {"name": "cohort_yaml", "surface": "cohort_yaml", "target": str(data / "cohort.yaml"), "options": {}},
            {"name": "clinical_csv", "surface": "clinical_csv", "target": str(data / "cohort.csv"), "options": {}}]


def _probe(bundle) -> tuple:
    import numpy as np

    rng = np.random.default_rng(0)
    ecg = rng.normal(0, 0.3, (3, bundle.n_leads, bundle.n_samples)).astype(np.float32)
    return ecg, rng.normal(0, 1, (3, bundle.n_meta)).astype(np.float32)


def _same_bundle(a, b) -> bool:
    import torch

    return a.state_dict.keys() == b.state_dict.keys() and all(
        torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict) and a.input_spec == b.input_spec \
        and a.thresholds == b.thresholds and a.scaling == b.scaling


def _forge(original: Path, path: Path, seed: int) -> None:
    """``original`` with one field (chosen by ``seed``) replaced by junk, saved with a recomputed checksum."""
    import dataclasses

    import numpy as np

    from aiecg.bundle import load_bundle, save_bundle

    rng = np.random.default_rng(seed)
    bundle = load_bundle(original)
    fields = [f.name for f in dataclasses.fields(bundle)]
    name = fields[seed % len(fields)]
    value = getattr(bundle, name)
    junk = JUNK[int(rng.integers(len(JUNK)))]
    if isinstance(value, dict) and value and rng.random() < 0.7:  # one entry of a mapping, not the whole
        key = list(value)[int(rng.integers(len(value)))]
        junk = {**value, key: junk}
    setattr(bundle, name, junk)
    try:
        save_bundle(bundle, path)
    except Exception:  # noqa: BLE001 - a value the writer cannot even store: the intact file stands instead
        path.write_bytes(original.read_bytes())


def attack_surface(case: dict, path: Path, state: dict) -> dict:
    """Load ``path`` (the damaged copy) as the command that takes it would; classify what came of it."""
    import numpy as np

    from aiecg.bundle import load_bundle
    from aiecg.data.cohort import load_cohort
    from aiecg.predict import predict

    surface = case["surface"]
    if surface in ("bundle", "bundle_fields"):
        bundle = load_bundle(path)
        ecg, meta = _probe(bundle)
        values = predict(bundle.build_model(), ecg, meta, bundle.target, bundle.scaling)
        if surface == "bundle" and not _same_bundle(bundle, state["bundle"]):
            return {"outcome": "silent_wrong", "what": "a damaged bundle loaded with other contents"}
        if not np.isfinite(values).all():
            return {"outcome": "silent_wrong", "what": "a loaded bundle predicts non-finite values"}
        return {"outcome": "ok"}
    if surface == "onnx":
        from aiecg.workflows.predict import _engine

        bundle = state["bundle"]
        values = predict(_engine(bundle, "onnx", path), *state["probe"], bundle.target, bundle.scaling)
        if not np.allclose(values, state["torch"], rtol=1e-3, atol=1e-3):
            return {"outcome": "silent_wrong", "what": f"ONNX predicts {values.ravel()[:2]} where torch gives "
                                                      f"{state['torch'].ravel()[:2]}"}
        return {"outcome": "ok"}
    from aiecg.data.targets import target_spec

    cohort = load_cohort(path if surface == "cohort_yaml" else path.parent / "cohort.yaml",
                         target_spec("INDEXED_MASS").outputs)
    frame = cohort.frame
    if surface == "cohort_yaml":
        import os

        base = os.path.normpath(cohort.mapping.ecg_dir or cohort.mapping.root)  # the table holds relative paths
        for ecg_path, problem in zip(frame["ecg_path"], frame.get("problem", [""] * len(frame))):
            if ecg_path and not problem and not str(ecg_path).startswith(base.rstrip(os.sep) + os.sep):
                return {"outcome": "silent_wrong", "what": f"ECG path {ecg_path} outside {base}, not refused"}
        return {"outcome": "ok"}
    for column, (low, high) in cohort.mapping.clinical.ranges.items():  # missing values are imputed, by design
        if column in frame:
            import pandas as pd

            values = pd.to_numeric(frame[column], errors="coerce")
            if (values.isna() & frame[column].notna()).any():
                return {"outcome": "silent_wrong", "what": f"a kept row with a {column} that is not a number"}
            if (np.isinf(values) | (values < low) | (values > high)).any():
                return {"outcome": "silent_wrong", "what": f"a kept row with {column} outside {low}..{high}"}
    return {"outcome": "ok"}


def _surface_state(case: dict) -> dict:
    """What a surface's damaged copies are compared with: the intact bundle and its torch predictions."""
    from aiecg.bundle import load_bundle
    from aiecg.predict import predict

    if case["surface"] not in ("bundle", "onnx"):
        return {}
    bundle = load_bundle(case["options"].get("bundle") or case["target"])
    probe = _probe(bundle)
    return {"bundle": bundle, "probe": probe,
            "torch": predict(bundle.build_model(), *probe, bundle.target, bundle.scaling)}


def worker(case: dict, start: int, stop: int, base_seed: int, memory_gb: float) -> None:
    """Read mutations ``start..stop-1`` of one case; print ``B i`` before and ``R i {json}`` after each read."""
    import warnings

    from aiecg.errors import AiecgError, ECGReadError
    from aiecg.io import get_reader
    from aiecg.io.fuzz import damage

    limit = int(memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    target = Path(case["target"])
    original = target.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="fuzz_"))
    for sibling in target.parent.iterdir():
        if sibling.is_dir():  # e.g. a cohort's ecg/ folder: read, never damaged
            (work / sibling.name).symlink_to(sibling)
        elif sibling != target:
            shutil.copy(sibling, work / sibling.name)
    damaged_path = work / target.name
    surface = case.get("surface")
    read = get_reader(case["format"]).read if surface is None else None
    state = _surface_state(case) if surface else {}
    try:
        for i in range(start, stop):
            seed = base_seed * 10**6 + i
            if surface == "bundle_fields":
                _forge(target, damaged_path, seed)
            else:
                damaged_path.write_bytes(damage(original, seed))
            print(f"B {i}", flush=True)
            began = time.perf_counter()
            try:
                if surface is not None:
                    result = attack_surface(case, damaged_path, state)
                else:
                    problem = _check_ecg(read(damaged_path, **case["options"]))
                    result = {"outcome": "ecg"} if problem is None else {"outcome": "escape", "what": problem}
            except ECGReadError as exc:
                result = {"outcome": "read_error", "worded": worded_by_package(exc.reason),
                          "reason": exc.reason.replace(str(work), "<dir>")[:200]}
            except AiecgError as exc:  # the newer surfaces' one-line errors (bundle, cohort, ONNX)
                reason = str(exc).replace(str(work), "<dir>")
                result = {"outcome": "read_error", "worded": worded_by_package(reason), "reason": reason[:200],
                          "multi_line": "\n" in reason}
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
        **{k: counts.get(k, 0) for k in ("ecg", "ok", "read_error", "silent_wrong", "escape", "hang", "crash")},
        "read_errors_worded_by_package": worded,
        "read_errors_on_several_lines": sum(r.get("multi_line", False) for r in errors),
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
    parser.add_argument("--surfaces", action="store_true",
                        help="attack the newer commands' inputs (bundle, ONNX, cohort YAML, clinical table)")
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
        cases = build_surfaces(Path(tmp)) if args.surfaces else build_sources(Path(tmp))
        if args.cases:
            cases = [c for c in cases if c["name"] in args.cases]
        per_case, per_format, examples = {}, {}, {}
        all_results: dict[str, list[dict]] = {}
        for case in cases:
            results = run_case(case, args.mutations, args.seed, args.timeout, args.memory_gb, args.batch, args.src)
            all_results[case["name"]] = results
            per_case[case["name"]] = {"format": case.get("format") or case["surface"], **summarise(results)}
            bad = [r for r in results if r["outcome"] in ("escape", "silent_wrong", "hang", "crash")]
            unworded = [r for r in results if r["outcome"] == "read_error" and not r["worded"]]
            examples[case["name"]] = {
                "escapes_hangs_crashes": [{**r, "seed": args.seed * 10**6 + r["i"]} for r in bad[:10]],
                "unworded_read_errors": Counter(r["reason"][:120] for r in unworded).most_common(5),
                "top_read_errors": Counter(r["reason"].split(" [library: ")[0][:90] for r in results
                                           if r["outcome"] == "read_error").most_common(8),
            }
            print(case["name"], per_case[case["name"]], flush=True)
        formats = sorted({c.get("format") or c["surface"] for c in cases})
        for fmt in formats:
            merged = [r for c in cases if (c.get("format") or c["surface"]) == fmt for r in all_results[c["name"]]]
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
