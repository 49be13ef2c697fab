"""R-peak detection and QC against the synthetic cohort's truth. Writes
``benchmarks/results/rpeak_synthetic.json``: sensitivity and positive predictive value of detected beats
(a detection within 50 ms of a true R peak) on clean records, and how QC treats the deliberately bad ones::

    .venv/bin/python benchmarks/rpeak_synthetic.py --n 500
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from aiecg.data.prepare import PrepareConfig
from aiecg.io import read_ecg
from aiecg.synth import SynthConfig, generate_cohort

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE_S = 0.05


def match(true: np.ndarray, found: np.ndarray, tolerance: int) -> int:
    """Detections matched one-to-one to true peaks within ``tolerance`` samples (greedy, in time order)."""
    used, hits = np.zeros(len(found), bool), 0
    for t in true:
        candidates = np.flatnonzero(~used & (np.abs(found - t) <= tolerance))
        if len(candidates):
            used[candidates[np.argmin(np.abs(found[candidates] - t))]] = True
            hits += 1
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiecg-rpeak-bench-"))
    try:
        result = generate_cohort(work, SynthConfig(n=args.n, seed=11, workers=2), progress=False)
        table = pd.read_parquet(result.table)
        truth = pd.read_parquet(result.truth).set_index("eid")
        beats = pd.read_parquet(result.beats_truth)
        tp = n_true = n_found = 0
        qc = []
        for eid, file in zip(table["eid"], table["ecg_file"]):
            found = PrepareConfig().analyse(read_ecg(work / file)).beats
            bad_reason = truth.loc[eid, "bad_reason"]
            qc.append({"eid": eid, "truth": bad_reason, "qc_ok": found.qc_ok, "qc_reason": found.qc_reason})
            if bad_reason:
                continue
            true = beats.loc[beats["eid"] == eid, "sample"].to_numpy()
            tp += match(true, found.r_peaks, int(TOLERANCE_S * 500))
            n_true += len(true)
            n_found += len(found.r_peaks)
        qc = pd.DataFrame(qc)
        bad = qc[qc["truth"] != ""]
        clean = qc[qc["truth"] == ""]
        results = {
            "n": args.n, "clean_records": len(clean), "true_beats": n_true, "detected_beats": n_found,
            "sensitivity": tp / n_true, "ppv": tp / n_found,
            "bad_records": len(bad), "bad_flagged": int((~bad["qc_ok"]).sum()),
            "bad_by_kind": {k: {"n": len(g), "flagged": int((~g["qc_ok"]).sum())} for k, g in bad.groupby("truth")},
            "clean_flagged": int((~clean["qc_ok"]).sum()),
            "clean_flag_reasons": clean.loc[~clean["qc_ok"], "qc_reason"].value_counts().to_dict(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / "rpeak_synthetic.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
