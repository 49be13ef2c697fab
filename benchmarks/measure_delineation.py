"""``aiecg measure`` against references: IEC 60601-2-25-style tolerances of the delineation on the synthetic
generator's true per-beat fiducials and on the device measurements in the real vendor files, QC on
synthetic and real records, and throughput on CardioSoft XML. Writes
``benchmarks/results/measure_delineation.json``::

    PYTHONPATH=src .venv/bin/python benchmarks/measure_delineation.py --n 300

Errors are ours minus the reference (ms; degrees for axes, bpm for rate). Per beat: every detected beat matched
one-to-one to a true beat within 150 ms of its R peak (the EC57 window; premature ventricular beats included,
reported apart too); beats with R within 50 ms of the strip's ends (cut complexes) are left out on both sides.
Global: the median beat's fiducials (relative to R) against the median of the true normal beats' (those the
strip holds: a first P wave or a last T wave cut by the strip's ends has no true fiducial and is left out of
that median). Vendor files: our global intervals against the device's own (GE CardioSoft/MUSE, Philips, HL7
aECG, DICOM, SCP where they carry them), with a note per file where the two disagree (``VENDOR_NOTES``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aiecg.io import read_ecg
from aiecg.signal.delineation import WAVE_KEYS
from aiecg.signal.record import analyse_ecg
from aiecg.synth import SynthConfig, generate_cohort
from aiecg.workflows.measure import MeasureTask, measure_file, measure_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from delineation_truth import load_beat_truth  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
EDGE_S = 0.05
MATCH_S = 0.15  # a detection matches a true beat within 150 ms (ANSI/AAMI EC57, as IEC 60601-2-25 refers)
GOALS_MS = {"qrs_on": 10, "qrs_off": 10, "p_on": 15, "p_off": 15, "t_off": 25}
DEVICE_KEYS = {"qrs_duration_ms": "QRSDuration", "pr_ms": "PQInterval", "qt_ms": "QTInterval",
               "p_duration_ms": "PDuration", "heart_rate_bpm": "VentricularRate", "p_axis_deg": "PAxis",
               "qrs_axis_deg": "RAxis", "t_axis_deg": "TAxis"}
VENDOR_NOTES = {
    "formats/dicom/example-DICOM1.dcm": "no device values: the GE MV360 export was de-identified without its "
    "WaveformAnnotationSequence; our measurement works (QRS, QT, PR, axes in 'ours')",
    "formats/dicom/example-DICOM2.dcm": "atrial fibrillation (the device's own statement, PR printed as 0): no P "
    "wave, so no P axis (the device's 167 degrees come from fibrillatory waves); T axis: ours is the net ST-T area "
    "(depressed ST, T under 0.1 mV in the limb leads), the device's the T wave's: definitions differ",
    "formats/hl7_aecg/subject1_0.xml": "the file annotates every beat's global P and QRS: our per-beat QRS onsets "
    "agree within 3 ms, offsets come 6-10 ms early (slow terminal return in II/aVF, late dip in V6, under the 6 % "
    "offset threshold); T ends of its three QRS-T annotations within 12 ms",
    "formats/muse/MUSE_20200923_093504_79000_example.xml": "first-degree AV block (PR 330 ms): the Ta wave in the "
    "long PR segment once held the P offset up to QRS onset (P 299 ms, P axis -56); fixed: P offset bounded by "
    "the tangent, P axis on the P wave's own isoelectric line (device POnset/POffset 46/95 of its median)",
    "formats/philips_sierra/129DYPRG.XML": "the printed QRS (135 ms) is lead II's, the longest single lead (acute "
    "inferior infarct: QRS runs into the elevated ST); the device's own global qrson/qrsoff span 96 ms, ours "
    "94.6 within 5 ms of each; QT -22 ms is tangent T end vs the device's, within the IEC 25 ms tolerance",
    "formats/philips_sierra/2020-5-18_15-48-11.xml": "slurred terminal S (III, aVF, V1-V2): on the device's own "
    "1 kHz representative beat (qonset 505, QRS 102) our method reads 511-598 ms against a visible 507-605: "
    "the tail's spatial velocity lies under the 6 % offset threshold, which the synthetic truth calibrates; left",
}


def _summary(errors: np.ndarray) -> dict[str, float]:
    e = np.asarray(errors, dtype=float)
    ok = np.isfinite(e)
    if not ok.any():
        return {"n": 0}
    e = e[ok]
    return {"n": int(e.size), "missing": int((~ok).sum()), "median_abs": round(float(np.median(np.abs(e))), 2),
            "bias": round(float(np.median(e)), 2), "p90_abs": round(float(np.percentile(np.abs(e), 90)), 2)}


def _match(true_r: np.ndarray, found_r: np.ndarray, tol: float) -> list[tuple[int, int]]:
    pairs, used = [], np.zeros(found_r.size, bool)
    for i, t in enumerate(true_r):
        d = np.abs(found_r - t)
        d[used] = np.inf
        if d.size and d.min() <= tol:
            j = int(np.argmin(d))
            used[j] = True
            pairs.append((i, j))
    return pairs


def synthetic(n: int, work: Path) -> dict:
    cfg = SynthConfig(n=n, seed=11, workers=2)
    result = generate_cohort(work, cfg, progress=False)
    table = pd.read_parquet(result.table)
    truth = pd.read_parquet(result.truth).set_index("eid")
    beats_truth = load_beat_truth(result.beats_truth, cfg)
    per_beat = {k: [] for k in WAVE_KEYS}
    per_beat_pvc = {k: [] for k in WAVE_KEYS}
    duration = {"beat": [], "global": []}
    glob = {k: [] for k in WAVE_KEYS}
    intervals = {"qrs_duration_ms": [], "qt_ms": [], "pr_ms": [], "p_duration_ms": []}
    tp = n_true = n_found = tp_pvc = n_pvc = 0
    qc = []
    for eid, file in zip(table["eid"], table["ecg_file"]):
        analysis = analyse_ecg(read_ecg(work / file))
        bs = analysis.beats
        bad = truth.loc[eid, "bad_reason"]
        qc.append({"truth": bad, "ok": bs.qc_ok, "reason": bs.qc_reason})
        if bad:
            continue
        # beats whose R lies within 50 ms of the strip's ends are cut: left out on both sides
        tb = beats_truth[beats_truth["eid"] == eid]
        tb = tb[tb["r_peak_s"].between(EDGE_S, 10.0 - EDGE_S)].reset_index(drop=True)
        found = analysis.table
        found = found[found["r_peak_s"].between(EDGE_S, 10.0 - EDGE_S)].reset_index(drop=True)
        pairs = _match(tb["r_peak_s"].to_numpy(), found["r_peak_s"].to_numpy(), MATCH_S)
        tp += len(pairs)
        n_true += len(tb)
        n_found += len(found)
        n_pvc += int(tb["ectopic"].sum())
        for i, j in pairs:
            pvc = bool(tb.loc[i, "ectopic"])
            tp_pvc += pvc
            for k in WAVE_KEYS:
                err = 1000 * (found.loc[j, f"{k}_s"] - tb.loc[i, f"{k}_s"])
                (per_beat_pvc if pvc else per_beat)[k].append(err)
            if not pvc:
                duration["beat"].append(1000 * ((found.loc[j, "qrs_off_s"] - found.loc[j, "qrs_on_s"])
                                                - (tb.loc[i, "qrs_off_s"] - tb.loc[i, "qrs_on_s"])))
        normal = tb[~tb["ectopic"]]
        if bs.clean.any() and len(normal):
            fid = analysis.fiducials
            for k in WAVE_KEYS:
                ours = (getattr(fid, k) - 150) / analysis.fs
                glob[k].append(1000 * (ours - float(np.nanmedian(normal[f"{k}_s"] - normal["r_peak_s"]))))
            m = analysis.measurements
            true_qrs = float(np.nanmedian(normal["qrs_off_s"] - normal["qrs_on_s"])) * 1000
            duration["global"].append(m["qrs_duration_ms"] - true_qrs)
            intervals["qrs_duration_ms"].append(m["qrs_duration_ms"] - true_qrs)
            intervals["qt_ms"].append(m["qt_ms"] - float(np.nanmedian(normal["t_off_s"] - normal["qrs_on_s"])) * 1000)
            intervals["pr_ms"].append(m["pr_ms"] - float(np.nanmedian(normal["qrs_on_s"] - normal["p_on_s"])) * 1000)
            intervals["p_duration_ms"].append(
                m["p_duration_ms"] - float(np.nanmedian(normal["p_off_s"] - normal["p_on_s"])) * 1000)
    qc = pd.DataFrame(qc)
    bad, clean = qc[qc["truth"] != ""], qc[qc["truth"] == ""]
    return {
        "n_records": n, "clean_records": len(clean),
        "r_peaks": {"true_beats": n_true, "detected": n_found, "sensitivity": round(tp / max(n_true, 1), 5),
                    "ppv": round(tp / max(n_found, 1), 5), "ectopic_beats": n_pvc,
                    "ectopic_sensitivity": round(tp_pvc / max(n_pvc, 1), 5)},
        "per_beat_normal": {k: _summary(v) for k, v in per_beat.items()},
        "per_beat_ectopic": {k: _summary(v) for k, v in per_beat_pvc.items()},
        "global_median_beat": {k: _summary(v) for k, v in glob.items()},
        "qrs_duration_bias": {k: _summary(v) for k, v in duration.items()},
        "global_intervals": {k: _summary(v) for k, v in intervals.items()},
        "qc": {"bad_records": len(bad), "bad_flagged": int((~bad["ok"]).sum()),
               "bad_by_kind": {k: {"n": len(g), "flagged": int((~g["ok"]).sum())} for k, g in bad.groupby("truth")},
               "clean_flagged": int((~clean["ok"]).sum()),
               "clean_flag_reasons": clean.loc[~clean["ok"], "reason"].value_counts().to_dict()},
    }


def vendors() -> dict:
    rows = []
    for path in sorted((DATA / "formats").rglob("*")):
        if not path.is_file() or path.suffix.lower() == ".xsd":
            continue
        try:
            ecg = read_ecg(path)
        except Exception as exc:  # the corrupt demo.scp
            rows.append({"file": str(path.relative_to(DATA)), "error": getattr(exc, "reason", str(exc))[:120]})
            continue
        m = analyse_ecg(ecg).measurements
        row = {"file": str(path.relative_to(DATA))}
        if row["file"] in VENDOR_NOTES:
            row["note"] = VENDOR_NOTES[row["file"]]
        if not any(k in ecg.measurements for k in DEVICE_KEYS.values()):
            row["device"] = "none in the file"
            row["ours"] = {k: round(float(m.get(k, np.nan)), 1) for k in DEVICE_KEYS}
        for ours, theirs in DEVICE_KEYS.items():
            device = ecg.measurements.get(theirs)
            if device is None or not np.isfinite(device) or (theirs == "PQInterval" and device == 0):
                continue
            diff = m.get(ours, np.nan) - float(device)
            if ours.endswith("_deg"):
                diff = (diff + 180) % 360 - 180
            row[ours] = {"ours": round(float(m.get(ours, np.nan)), 1), "device": float(device),
                         "diff": round(float(diff), 1)}
        rows.append(row)
    summary = {}
    for key in DEVICE_KEYS:
        diffs = [r[key]["diff"] for r in rows if key in r]
        if diffs:
            summary[key] = _summary(diffs)
    return {"files": rows, "summary": summary}


def real_qc() -> dict:
    files = sorted((DATA / "cinc2021").glob("*.hea")) + sorted((DATA / "ptbxl" / "records500").glob("*.hea"))
    flagged = {}
    for path in files:
        bs = analyse_ecg(read_ecg(path)).beats
        if not bs.qc_ok:
            flagged[path.stem] = bs.qc_reason
    return {"records": len(files), "flagged": flagged,
            "note": "JS20004 and JS20008 hold all-zero V2, V4 and V6, JS20007 a V6 buried in a large "
                    "oscillation (model inputs)"}


def speed(work: Path, n: int) -> dict:
    files = sorted((work / "ecg").glob("*.xml"))[:n]
    tasks = [MeasureTask(str(f)) for f in files]
    measure_files(tasks[:5])  # warm-up (imports, filter design)
    started = time.perf_counter()
    measure_files(tasks, with_beats=True, workers=1)
    elapsed = time.perf_counter() - started
    cpu = time.process_time()
    for task in tasks:  # the same per-file function, in this process: its CPU time (the pool's is the children's)
        measure_file(task, with_beats=True)
    cpu = time.process_time() - cpu
    started = time.process_time()
    for f in files:
        read_ecg(f)
    read_s = time.process_time() - started
    return {"records": len(files), "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
            "records_per_s_per_core": round(len(files) / elapsed, 1),
            "records_per_cpu_s": round(len(files) / cpu, 1),
            "read_only_records_per_cpu_s": round(len(files) / read_s, 1), "loadavg": os.getloadavg(),
            "cpus": os.cpu_count(), "note": "records_per_s_per_core: wall time of measure_files with one worker "
                                            "process; records_per_cpu_s: CPU time (time.process_time) of "
                                            "measure_file in this process, which a busy machine does not halve"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-measure-bench-"))
    try:
        results = {"goals_ms": GOALS_MS, "synthetic": synthetic(args.n, work), "vendors": vendors(),
                   "real_qc": real_qc(), "speed_cardiosoft": speed(work, min(args.n, 200))}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / "measure_delineation.json"
    out.write_text(json.dumps(results, indent=2, default=float))
    print(json.dumps({k: v for k, v in results.items() if k != "vendors"}, indent=2, default=float))
    print(json.dumps(results["vendors"]["summary"], indent=2))


if __name__ == "__main__":
    main()
