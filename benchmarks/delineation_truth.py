"""Per-beat true fiducials of the synthetic generator, for the delineation benchmark and tests.

The generator (``aiecg.synth``) writes ``truth_beats.parquet``. Where it carries the per-beat columns
``r_peak_s, p_on_s, p_peak_s, p_off_s, qrs_on_s, qrs_off_s, t_peak_s, t_off_s`` they are used as they are.
Where it only carries the R-peak samples (older generators), the same records are re-synthesised in this
process with the same seeds and the fiducials are read off the generator's own beat schedule and
morphology: QRS onset is the beat's onset time, QRS offset onset + QRS duration, P onset onset - PR,
P offset P onset + P duration, T end onset + QT at the preceding RR (the generator's Fridericia law;
for a premature ventricular beat, 2 SD after the centre of its single T lobe), peaks where the norm of the
wave's lobes is largest. Premature ventricular beats have no P wave.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRUTH_COLUMNS = ("r_peak_s", "p_on_s", "p_peak_s", "p_off_s", "qrs_on_s", "qrs_off_s", "t_peak_s", "t_off_s")


def _peak_time(morph: Any, kinds: tuple[int, ...], rr: float) -> float:
    from aiecg.synth.heart import ST, T

    sel = np.isin(morph.kinds, kinds) & np.any(morph.vectors != 0, axis=1)
    if not sel.any():
        return float("nan")
    stretch = np.where(np.isin(morph.kinds, (ST, T)), np.cbrt(rr), 1.0)
    c, w, v = (morph.centres * stretch)[sel], (morph.widths * stretch)[sel], morph.vectors[sel]
    grid = np.linspace((c - 4 * w).min(), (c + 4 * w).max(), 2000)
    g = np.exp(-0.5 * ((grid[None, :] - c[:, None]) / w[:, None]) ** 2)
    return float(grid[np.argmax(np.linalg.norm(v.T @ g, axis=0))])


def _record_truth(morph: Any, pvc: Any, onsets: np.ndarray, rr: np.ndarray, ectopic: np.ndarray,
                  duration: float, fs: float) -> pd.DataFrame:
    from aiecg.synth.heart import ST, P, T

    rows = []
    for onset, rr_i, is_pvc in zip(onsets, rr, ectopic):
        m = pvc if is_pvc else morph
        r = onset + m.r_s
        if not 0 <= round(r * fs) < round(duration * fs):
            continue
        if is_pvc:
            t_idx = np.flatnonzero((m.kinds == T) & np.any(m.vectors != 0, axis=1))[0]
            s = np.cbrt(rr_i)
            t_off = onset + (m.centres[t_idx] + 2 * m.widths[t_idx]) * s
            p_on = p_peak = p_off = float("nan")
        else:
            t_off = onset + m.qt_at(rr_i)
            p_on, p_off = onset - m.pr_s, onset - m.pr_s + m.p_s
            p_peak = onset + _peak_time(m, (P,), rr_i)
        rows.append({"r_peak_s": r, "p_on_s": p_on, "p_peak_s": p_peak, "p_off_s": p_off,
                     "qrs_on_s": onset, "qrs_off_s": onset + m.qrs_s,
                     "t_peak_s": onset + _peak_time(m, (ST, T), rr_i), "t_off_s": t_off, "ectopic": bool(is_pvc)})
    return pd.DataFrame(rows)


def resynthesise_truth(cfg: Any) -> pd.DataFrame:
    """Per-beat truth of ``generate_cohort(out, cfg)``'s records, rebuilt with the generator's own seeds."""
    import aiecg.synth.record as rec_mod
    from aiecg.synth.cohort import FIRST_EID, DomainShift
    from aiecg.synth.population import select_cohort

    shift = cfg.shift or DomainShift()
    people = select_cohort(cfg.n, np.random.default_rng([cfg.seed, 0]), cfg.lvh_prevalence, shift.population)
    people.insert(0, "eid", np.arange(FIRST_EID, FIRST_EID + len(people), dtype=np.int64))
    record_kw = {"gain": shift.gain, "noise": shift.noise, "mains_hz": shift.mains_hz}
    frames = []
    captured: dict[str, Any] = {}
    originals = (rec_mod.sample_morphology, rec_mod._beat_schedule, rec_mod.pvc_morphology)

    def cap(name, fn):
        def wrapped(*a, **k):
            captured[name] = fn(*a, **k)
            return captured[name]
        return wrapped

    rec_mod.sample_morphology = cap("morph", originals[0])
    rec_mod._beat_schedule = cap("schedule", originals[1])
    rec_mod.pvc_morphology = cap("pvc", originals[2])
    try:
        for i, row in enumerate(people.to_dict("records")):
            rng = np.random.default_rng([cfg.seed, 1, i])
            rec_mod.synthesise_record(row, rng, rec_mod.RecordParams(**record_kw),
                                      rec_mod.HeartParams(**asdict(cfg.heart)))
            onsets, rr, ectopic = captured["schedule"]
            frame = _record_truth(captured["morph"][0], captured["pvc"], onsets, rr, ectopic, 10.0, rec_mod.FS)
            frame.insert(0, "eid", int(row["eid"]))
            frames.append(frame)
    finally:
        rec_mod.sample_morphology, rec_mod._beat_schedule, rec_mod.pvc_morphology = originals
    return pd.concat(frames, ignore_index=True)


def load_beat_truth(beats_truth: Path, cfg: Any) -> pd.DataFrame:
    """The cohort's per-beat truth with :data:`TRUTH_COLUMNS` (from the file where it has them)."""
    table = pd.read_parquet(beats_truth)
    if all(c in table.columns for c in TRUTH_COLUMNS):
        if "ectopic" not in table.columns:
            table["ectopic"] = table["is_ectopic"] if "is_ectopic" in table.columns else False
        return table
    truth = resynthesise_truth(cfg)
    # the rebuilt R peaks must be the file's, or the seeds no longer match the generator
    if "sample" in table.columns and len(table) == len(truth):
        assert np.array_equal(np.rint(truth["r_peak_s"] * 500.0).astype(np.int64), table["sample"].to_numpy())
    return truth
