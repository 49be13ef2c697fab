"""``aiecg measure`` against cardiologists' per-lead annotations: the LUDB development half in ``shared/data/ludb``.

Reads every record through the project's own WFDB reader and the measure path (``measure_file`` with the per-beat
table), and the experts' per-lead marks with ``wfdb.rdann``. Writes ``benchmarks/results/ludb_delineation.json``
and ``benchmarks/results/ludb_delineation_records.csv``::

    PYTHONPATH=src .venv/bin/python benchmarks/ludb_delineation.py

The reference (IEC 60601-2-25: a global boundary is the earliest onset / latest offset over all leads) is built
per beat from the leads' marks, robust to one stray lead: the second-earliest onset and the second-latest offset
over the annotated leads (``--reference envelope`` takes the plain earliest/latest, ``median`` the median over
leads, for comparison). Beats are grouped over leads by their QRS peak marks (a new beat where the next mark is
more than 150 ms later); a P wave belongs to the next QRS within 0.6 s (the last one before it, where AV block
puts several), a T wave to the QRS before it within 0.8 s. Our beats match reference beats one-to-one within 150
ms of their R peaks (ANSI/AAMI EC57); the experts leave the strip's first and last 0.3-2.7 s unannotated, so a
detection counts for the positive predictivity only inside the annotated stretch.

Reported:
- per beat, non-paced records: median |error| (ours - reference, ms) of QRS onset/offset, P onset/offset,
  T offset, with bias and 90th percentile;
- per record (IEC 60601-2-25 style: the program's global duration from the median beat minus the reference's
  median over the record's beats), non-paced: mean difference and SD of P duration, PR, QRS duration, QT;
- QC verdicts (status, reason, paced flag) against the database's rhythm, conduction and pacing labels;
- R-peak sensitivity and positive predictivity; speed in records per CPU-second (``time.process_time``) of the
  measure path with the per-beat table, with the load average;
- the device tables of ``shared/data/formats`` (``measure_delineation.vendors``) for QRS duration and QT.
Every figure is given for all records and without the ones looked at individually during development
(``LOOKED_AT``; the other LUDB half is held out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aiecg.io import read_ecg
from aiecg.workflows.measure import MeasureTask, measure_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from measure_delineation import MATCH_S, _match, _summary  # noqa: E402

LUDB = ROOT.parent / "shared" / "data" / "ludb"
LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
FS = 500.0
GROUP_S = 0.15
TARGETS = {
    "per_beat_median_abs_ms": {"qrs_on": 5.0, "qrs_off": 8.0, "p_on": 8.0, "t_off": 12.0},
    "per_record_mean_diff_ms": {"p_duration_ms": 10.0, "pr_ms": 10.0, "qrs_duration_ms": 10.0, "qt_ms": 25.0},
    "per_record_sd_ms": {"qrs_duration_ms": 12.0},
    "device_mean_diff_ms": {"qrs_duration_ms": 10.0, "qt_ms": 10.0},
    "r_peaks": {"sensitivity": 0.995, "ppv": 0.995},
    "records_per_cpu_s": 50.0,
}
ECGDELI = {"note": "the issue's figures for ECGdeli (Pilia et al. SoftwareX 2021) on this database; not rerun here "
                   "(GPL-3.0, not installed)",
           "per_beat_median_abs_ms": {"qrs_on": 5.0, "qrs_off": 10.0, "p_on": 8.0, "t_off": 14.0},
           "per_record_qrs_duration": {"mean": 9.0, "sd": 13.0}, "records_per_cpu_s": 3.0}
LOOKED_AT: frozenset[str] = frozenset({"1", "31", "38", "56", "83", "90", "92", "93", "95", "96", "104", "108",
                                       "111", "112", "130", "169"})
"""Records whose signals or per-record figures were inspected one by one while developing measurement v3 (lead
traces around boundaries and pacing spikes, P-wave searches, RBBB and LBBB widths, AF P consistency); the figures
are also reported without them."""
WAVES = {"p": "p", "N": "qrs", "t": "t"}
INTERVALS = ("p_duration_ms", "pr_ms", "qrs_duration_ms", "qt_ms")


def lead_waves(record: Path, lead: str) -> dict[str, np.ndarray]:
    """The experts' marks in one lead: wave ('p', 'qrs', 't') -> [n, 3] (onset, peak, offset) in seconds (NaN
    where a bracket is missing)."""
    import wfdb

    ann = wfdb.rdann(str(record), lead)
    out: dict[str, list] = {w: [] for w in WAVES.values()}
    samples, symbols = np.asarray(ann.sample), list(ann.symbol)
    for i, sym in enumerate(symbols):
        if sym not in WAVES:
            continue
        on = samples[i - 1] if i > 0 and symbols[i - 1] == "(" else np.nan
        off = samples[i + 1] if i + 1 < len(symbols) and symbols[i + 1] == ")" else np.nan
        out[WAVES[sym]].append((on, samples[i], off))
    return {w: np.asarray(v, dtype=np.float64).reshape(-1, 3) / FS for w, v in out.items()}


def _robust(values: list[float], kind: str, reference: str) -> float:
    v = np.sort(np.asarray([x for x in values if np.isfinite(x)]))
    if v.size == 0:
        return np.nan
    if reference == "median":
        return float(np.median(v))
    k = 0 if reference == "envelope" or v.size < 3 else 1
    return float(v[k] if kind == "on" else v[-1 - k])


def reference_beats(record: Path, reference: str = "robust") -> tuple[pd.DataFrame, tuple[float, float]]:
    """Per-beat 12-lead reference boundaries (seconds) and the annotated stretch (first and last mark)."""
    marks = {lead: lead_waves(record, lead) for lead in LEADS}
    peaks = np.sort(np.concatenate([m["qrs"][:, 1] for m in marks.values()]))
    if peaks.size == 0:
        return pd.DataFrame(), (np.nan, np.nan)
    groups, start = [], 0
    for i in range(1, peaks.size + 1):
        if i == peaks.size or peaks[i] - peaks[i - 1] > GROUP_S:
            groups.append(peaks[start:i])
            start = i
    centres = np.array([float(np.median(g)) for g in groups])
    rows = []
    for b, centre in enumerate(centres):
        per = {k: [] for k in ("qrs_on", "qrs_off", "p_on", "p_off", "t_off")}
        n_leads = 0
        for m in marks.values():
            q = m["qrs"]
            j = np.flatnonzero(np.abs(q[:, 1] - centre) <= GROUP_S)
            if not j.size:
                continue
            n_leads += 1
            on, off = q[j[0], 0], q[j[0], 2]
            per["qrs_on"].append(on)
            per["qrs_off"].append(off)
            p = m["p"]
            before = np.flatnonzero((p[:, 1] < centre) & (p[:, 1] > centre - 0.6))
            if before.size and (b == 0 or p[before[-1], 1] > centres[b - 1]):
                per["p_on"].append(p[before[-1], 0])
                per["p_off"].append(p[before[-1], 2])
            t = m["t"]
            after = np.flatnonzero((t[:, 1] > centre) & (t[:, 1] < centre + 0.8))
            if after.size and (b + 1 == centres.size or t[after[0], 1] < centres[b + 1]):
                per["t_off"].append(t[after[0], 2])
        row = {"r_s": centre, "n_leads": n_leads}
        for key, values in per.items():
            row[key] = _robust(values, "on" if key.endswith("_on") else "off", reference)
        rows.append(row)
    every = np.concatenate([m[w].ravel() for m in marks.values() for w in m])
    every = every[np.isfinite(every)]
    return pd.DataFrame(rows), (float(every.min()), float(every.max()))


def _labels() -> pd.DataFrame:
    table = pd.read_csv(LUDB / "ludb.csv", dtype=str).fillna("")
    table = table.apply(lambda c: c.str.replace("\n", " ").str.strip())
    table["record"] = table["ID"].astype(int).astype(str)
    return table.set_index("record")


def _mean_sd(values) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0}
    return {"n": int(v.size), "mean": round(float(v.mean()), 2), "sd": round(float(v.std(ddof=1)), 2) if v.size > 1
            else float("nan"), "mean_abs": round(float(np.abs(v).mean()), 2)}


def evaluate(records: list[str], reference: str = "robust") -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Measure every record and compare; returns (speed and counts, one row per record, one row per matched
    beat)."""
    labels = _labels()
    record_rows, beat_rows = [], []
    tasks = [MeasureTask(str(LUDB / "data" / f"{rec}.hea")) for rec in records]
    for task in tasks[:5]:  # warm-up: imports, filter designs
        measure_file(task, with_beats=True)
    cpu, read_cpu = [], 0.0
    for _ in range(2):  # the measure path with the per-beat table, twice (the better pass is reported)
        started = time.process_time()
        for task in tasks:
            measure_file(task, with_beats=True)
        cpu.append(time.process_time() - started)
    started = time.process_time()
    for task in tasks:
        read_ecg(task.file)
    read_cpu = time.process_time() - started
    for rec, task in zip(records, tasks):
        row, table, _ = measure_file(task, with_beats=True)
        ref, (first, last) = reference_beats(LUDB / "data" / rec, reference)
        lab = labels.loc[rec] if rec in labels.index else pd.Series(dtype=str)
        out = {"record": rec, "status": row.get("status"), "reason": row.get("reason", ""),
               "paced_flag": bool(row.get("paced", False)) if pd.notna(row.get("paced", False)) else False,
               "paced_truth": bool(lab.get("Cardiac pacing", "")), "rhythm": lab.get("Rhythms", ""),
               "conduction": lab.get("Conduction abnormalities", ""), "looked_at": rec in LOOKED_AT,
               "n_ref_beats": len(ref)}
        ours = table if table is not None else pd.DataFrame(columns=["r_peak_s"])
        inside = ours[(ours["r_peak_s"] >= first - 0.05) & (ours["r_peak_s"] <= last + 0.05)].reset_index(drop=True)
        pairs = _match(ref["r_s"].to_numpy(), inside["r_peak_s"].to_numpy(), MATCH_S) if len(ref) else []
        out.update(n_found=len(inside), tp=len(pairs))
        for i, j in pairs:
            b = {"record": rec, "paced": out["paced_truth"], "looked_at": out["looked_at"]}
            for key in ("qrs_on", "qrs_off", "p_on", "p_off", "t_off"):
                b[key] = 1000 * (inside.loc[j, f"{key}_s"] - ref.loc[i, key])
            beat_rows.append(b)
        ref_iv = {"p_duration_ms": ref["p_off"] - ref["p_on"], "pr_ms": ref["qrs_on"] - ref["p_on"],
                  "qrs_duration_ms": ref["qrs_off"] - ref["qrs_on"], "qt_ms": ref["t_off"] - ref["qrs_on"]} \
            if len(ref) else {}
        for key in INTERVALS:
            r = 1000 * float(np.nanmedian(ref_iv[key])) if key in ref_iv and ref_iv[key].notna().any() else np.nan
            out[f"ref_{key}"] = round(r, 1)
            out[f"ours_{key}"] = row.get(key, np.nan)
            out[f"diff_{key}"] = out[f"ours_{key}"] - r
        record_rows.append(out)
    best = min(cpu)
    speed = {"records": len(records), "cpu_s": [round(c, 3) for c in cpu],
             "records_per_cpu_s": round(len(records) / best, 1),
             "read_only_cpu_s": round(read_cpu, 3),
             "analysis_records_per_cpu_s": round(len(records) / max(best - read_cpu, 1e-9), 1),
             "note": "read + analyse + per-beat table (measure_file) in CPU seconds (time.process_time), the better "
                     "of two passes after a warm-up; 'analysis' leaves out the WFDB reading (wfdb parses each header "
                     "twice)",
             "loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    return speed, pd.DataFrame(record_rows), pd.DataFrame(beat_rows)


def summarise(records: pd.DataFrame, beats: pd.DataFrame) -> dict:
    nonpaced_b = beats[~beats["paced"]] if len(beats) else beats
    nonpaced_r = records[~records["paced_truth"]]
    return {
        "records": len(records), "non_paced_records": len(nonpaced_r),
        "per_beat_non_paced": {k: _summary(nonpaced_b[k]) for k in ("qrs_on", "qrs_off", "p_on", "p_off", "t_off")},
        "per_beat_paced": {k: _summary(beats.loc[beats["paced"], k]) for k in ("qrs_on", "qrs_off", "t_off")},
        "per_record_non_paced": {k: _mean_sd(nonpaced_r[f"diff_{k}"]) for k in INTERVALS},
        "per_record_non_paced_no_p_where_reference_has_p": int(
            (nonpaced_r["ref_pr_ms"].notna() & nonpaced_r["ours_pr_ms"].isna()).sum()),
        "per_record_non_paced_p_where_reference_has_none": int(
            (nonpaced_r["ref_pr_ms"].isna() & nonpaced_r["ours_pr_ms"].notna()).sum()),
        "r_peaks": {"reference_beats": int(records["n_ref_beats"].sum()), "detected": int(records["n_found"].sum()),
                    "sensitivity": round(float(records["tp"].sum() / max(records["n_ref_beats"].sum(), 1)), 5),
                    "ppv": round(float(records["tp"].sum() / max(records["n_found"].sum(), 1)), 5)},
        "qc": {
            "non_paced_rejected": nonpaced_r.loc[nonpaced_r["status"] != "ok", ["record", "status", "reason"]]
            .to_dict("records"),
            "paced_records": int(records["paced_truth"].sum()),
            "paced_flagged": int((records["paced_truth"] & records["paced_flag"]).sum()),
            "non_paced_flagged_paced": records.loc[~records["paced_truth"] & records["paced_flag"], "record"].tolist(),
            "status_counts": records["status"].value_counts().to_dict(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", choices=("robust", "envelope", "median"), default="robust")
    parser.add_argument("--records", nargs="*", help="record numbers (default: every record in RECORDS)")
    parser.add_argument("--no-vendors", action="store_true", help="skip the device tables of shared/data/formats")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ludb_delineation.json"))
    args = parser.parse_args()
    if not LUDB.is_dir():
        raise SystemExit(f"LUDB not found at {LUDB}")
    names = args.records or [r.split("/")[-1] for r in (LUDB / "RECORDS").read_text().split()]
    speed, records, beats = evaluate(names, args.reference)
    results = {"reference": args.reference, "targets": TARGETS, "ecgdeli_anchor": ECGDELI, "speed": speed,
               "all_records": summarise(records, beats)}
    fresh = ~records["looked_at"]
    if not fresh.all():
        results["without_looked_at"] = summarise(records[fresh], beats[~beats["looked_at"]])
        results["looked_at"] = sorted(LOOKED_AT)
    if not args.no_vendors:
        from measure_delineation import vendors

        v = vendors()
        results["devices"] = {k: _mean_sd([f[k]["diff"] for f in v["files"] if k in f])
                              for k in ("qrs_duration_ms", "qt_ms", "pr_ms", "p_duration_ms")}
        results["devices"]["note"] = "ours - the device's printed global value over the vendor files " \
                                     "(measure_delineation.json has the per-file table)"
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2, default=float))
    records.to_csv(out.with_name(out.stem + "_records.csv"), index=False, float_format="%.1f")
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
