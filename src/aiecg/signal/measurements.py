"""Amplitudes, intervals and axes from a median beat, in the manner of GE's 12SL.

12SL (GE Healthcare, "Marquette 12SL ECG Analysis Program, Physician's Guide") measures on the median beat:
wave boundaries globally (over all leads at once), and each wave's amplitude against the isoelectric level
just before QRS onset (the PR segment). We do the same:

* Boundaries: ``aiecg.signal.delineation.delineate``: global boundaries as IEC 60601-2-25 defines them (the
  earliest onset and latest offset over all leads, at the isoelectric point; spatial velocity for the QRS, the
  spatial magnitude for P and T; T end where the T magnitude returns to baseline, bounded by the tangent
  method). So QRS duration, PR, P duration and QT are global intervals, measured against the cardiologists'
  LUDB annotations combined over the leads and the devices' printed values (``benchmarks/ludb_delineation.py``).
  A P wave is reported only when it repeats from beat to beat (not in atrial fibrillation) and lasts at most
  200 ms.
* Baseline per lead: mean of the 10 ms before QRS onset.
* R: the largest positive deflection inside the QRS. Q: the deepest negative deflection before the first
  positive wave (the initial negative deflection); S: the deepest negative deflection after the start of the
  first positive wave, so the S of an rSR' (right bundle branch block) is an S even when R' is the larger
  wave. A positive wave must reach 30 uV (``MIN_WAVE_MV``) and 5 % of R. A lead without one (QS complex)
  has its negative deflection counted as S (Q = 0), as the voltage criteria read it. Q and S are positive
  depths, as in 12SL's measurement table; absent waves are 0.
* J: the amplitude at QRS offset; ST: at QRS offset + 60 ms (ST60, before the T peak). T: the signed extreme
  between 80 ms after QRS offset and T end (or 70 % of the RR interval after QRS onset without a T end).
  P: the signed extreme between P onset and offset (NaN without a P wave).
* Intervals: PR = QRS onset - P onset, P duration, QRS duration, QT = T end - QRS onset; QTc by Bazett
  (Heart 1920;7:353) and Fridericia (Acta Med Scand 1920;53:469).
* Frontal axes of P, QRS and T: the direction of the net areas of I and aVF over the wave in Einthoven's
  triangle, atan2(2 aVF / sqrt(3), I) in degrees (-180, 180]. The P areas are taken against the P wave's own
  isoelectric line (straight from its level at P onset to its level at P offset), not the PR segment: the
  atrial repolarisation (Ta) wave displaces the PR segment, most after a long PR interval, and against it a
  small P wave's axis turns by tens of degrees (GE's MUSE example with first-degree AV block: 6 degrees on its
  own line, as the device prints, -27 against the PR segment). The T axis takes the whole ST-T (QRS offset to
  T end), so a displaced ST segment turns it; devices that take the T wave alone differ where the ST segment
  is depressed and the T wave small (GE MAC55 DICOM example in atrial fibrillation: -127 here, -168 printed).

Key scheme of the returned dict: ``{wave}_{lead}`` in mV for wave in P, Q, R, S, J, ST, T (``R_V5``, ``S_V1``,
``T_aVR``); ``qrs_area_{lead}`` in mV*ms; ``p_onset``, ``p_offset``, ``qrs_onset``, ``qrs_offset``, ``t_peak``,
``t_end`` as (fractional) sample indices into the median beat; ``qrs_duration_ms``, ``qt_ms``, ``pr_ms``,
``p_duration_ms``, ``qrs_axis_deg``, ``p_axis_deg``, ``t_axis_deg``; with a heart rate also
``heart_rate_bpm``, ``rr_ms``, ``qtc_bazett_ms`` and ``qtc_fridericia_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aiecg.ecg import normalise_lead_name
from aiecg.signal.delineation import DelineationConfig, Fiducials, delineate
from aiecg.signal.delineation import qrs_bounds as _global_qrs_bounds
from aiecg.signal.leads import DERIVED_LIMB_LEADS, derive_limb_leads

MIN_WAVE_MV = 0.03
WAVES: tuple[str, ...] = ("P", "Q", "R", "S", "J", "ST", "T")


def qrs_bounds(median: np.ndarray, fs: float, r_offset: int) -> tuple[int, int]:
    """Global QRS onset and offset (sample indices) from the spatial velocity of all leads."""
    on, off = _global_qrs_bounds(np.asarray(median, dtype=np.float64), fs, r_offset)
    n = np.asarray(median).shape[1]
    return (int(round(on)) if np.isfinite(on) else 0), (int(round(off)) if np.isfinite(off) else n - 1)


def _axis(y: np.ndarray, names: tuple[str, ...], lo: float, hi: float) -> float:
    if "I" not in names or "aVF" not in names or not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return float("nan")
    a, b = int(round(lo)), int(round(hi)) + 1
    area_i, area_avf = y[names.index("I"), a:b].sum(), y[names.index("aVF"), a:b].sum()
    return float(np.degrees(np.arctan2(2.0 * area_avf / np.sqrt(3.0), area_i)))


def _wave_baseline_removed(y: np.ndarray, lo: float, hi: float, fs: float) -> np.ndarray:
    """``y`` less, per lead, the straight line through its levels at ``lo`` and ``hi`` (each the mean over
    +-10 ms around the boundary): the wave's own isoelectric line."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return y
    n, h = y.shape[1], max(1, int(round(0.01 * fs)))
    a, b = int(round(lo)), int(round(hi))
    level_a = y[:, max(0, a - h):min(n, a + h + 1)].mean(axis=1)
    level_b = y[:, max(0, b - h):min(n, b + h + 1)].mean(axis=1)
    w = np.clip((np.arange(n) - a) / max(1, b - a), 0.0, 1.0)
    return y - (level_a[:, None] * (1.0 - w) + level_b[:, None] * w)


def compute_measurements(
    median: np.ndarray,
    leads: Sequence[str],
    fs: float,
    r_offset: int,
    heart_rate: float | None = None,
    fiducials: Fiducials | None = None,
    bad_leads: Sequence[str] = (),
    delineation: DelineationConfig | None = None,
) -> dict[str, float]:
    """Per-lead wave amplitudes, intervals and frontal axes of a median beat [lead, window].

    Limb leads III, aVR, aVL, aVF are derived from I and II when missing, so a record with I, II and V1-V6
    gives all 12 leads' amplitudes. ``r_offset`` is the R (fiducial) sample of the beat window;
    ``fiducials`` (sample positions in this window) are delineated here when not given. Leads in
    ``bad_leads`` (flat, noisy, saturated) get NaN amplitudes.
    """
    names = tuple(normalise_lead_name(n) for n in leads)
    x = np.asarray(median, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(names):
        raise ValueError(f"median must be [lead, window] with {len(names)} leads, got shape {x.shape}")
    if "I" in names and "II" in names and any(n not in names for n in DERIVED_LIMB_LEADS):
        x, names = derive_limb_leads(x, names)
    n = x.shape[1]
    ms = 1000.0 / fs
    rr_s = 60.0 / heart_rate if heart_rate is not None and np.isfinite(heart_rate) and heart_rate > 0 else None
    fid = fiducials if fiducials is not None else delineate(x, fs, r_offset, rr_s, delineation)
    if not (np.isfinite(fid.qrs_on) and np.isfinite(fid.qrs_off)):
        on_i, off_i = qrs_bounds(x, fs, r_offset)
        fid = Fiducials(qrs_on=float(on_i), qrs_off=float(off_i))
    onset, offset = int(round(fid.qrs_on)), int(round(fid.qrs_off))
    base_len = max(1, int(round(0.01 * fs)))
    b0 = max(0, onset - base_len)
    baseline = x[:, b0:onset].mean(axis=1) if onset > b0 else x[:, 0]
    y = x - baseline[:, None]

    out: dict[str, float] = {}
    qrs = y[:, onset:offset]
    t_start = min(n, offset + int(round(0.08 * fs)))
    t_stop = n
    if rr_s is not None:
        t_stop = min(n, onset + int(round(0.7 * rr_s * fs)))
    if np.isfinite(fid.t_off):
        t_stop = min(n, max(t_stop, int(round(fid.t_off)) + 1))
    st_at = offset + int(round(0.06 * fs))
    if np.isfinite(fid.t_peak):
        st_at = min(st_at, int(round(fid.t_peak)))
    has_p = np.isfinite(fid.p_on) and np.isfinite(fid.p_off) and fid.p_off > fid.p_on
    bad = {normalise_lead_name(b) for b in bad_leads}
    for i, lead in enumerate(names):
        q = qrs[i]
        r_amp = float(q.max()) if q.size else float("nan")
        positive = np.flatnonzero(q >= max(MIN_WAVE_MV, 0.05 * r_amp)) if q.size else np.zeros(0, int)
        if r_amp >= MIN_WAVE_MV and positive.size:
            first = int(positive[0])  # start of the first positive wave (r of an rSR', R of a qR)
            q_amp = float(max(0.0, -q[:first].min())) if first > 0 else 0.0
            s_amp = float(max(0.0, -q[first:].min()))
        else:
            r_amp, q_amp, s_amp = max(r_amp, 0.0), 0.0, float(max(0.0, -q.min())) if q.size else float("nan")
        out[f"R_{lead}"] = r_amp
        out[f"Q_{lead}"] = q_amp
        out[f"S_{lead}"] = s_amp
        out[f"J_{lead}"] = float(y[i, min(offset, n - 1)])
        out[f"ST_{lead}"] = float(y[i, min(st_at, n - 1)])
        if t_stop > t_start:
            seg = y[i, t_start:t_stop]
            out[f"T_{lead}"] = float(seg[np.argmax(np.abs(seg))])
        else:
            out[f"T_{lead}"] = float("nan")
        if has_p:
            seg = y[i, int(round(fid.p_on)) : int(round(fid.p_off)) + 1]
            out[f"P_{lead}"] = float(seg[np.argmax(np.abs(seg))])
        else:
            out[f"P_{lead}"] = float("nan")
        out[f"qrs_area_{lead}"] = float(q.sum() * ms)
        # R-peak time (intrinsicoid deflection): QRS onset to the peak of R; >= 50 ms in V5/V6 scores a
        # Romhilt-Estes point (Romhilt & Estes 1968; AHA/ACCF/HRS recommendations, Hancock et al. 2009)
        out[f"r_peak_time_{lead}"] = float(np.argmax(q) * ms) if q.size and r_amp >= MIN_WAVE_MV else float("nan")
        if lead in bad:
            out[f"r_peak_time_{lead}"] = float("nan")
            for wave in WAVES:
                out[f"{wave}_{lead}"] = float("nan")
            out[f"qrs_area_{lead}"] = float("nan")

    t_end = fid.t_off if np.isfinite(fid.t_off) else float("nan")
    out["p_onset"] = float(fid.p_on)
    out["p_offset"] = float(fid.p_off)
    out["qrs_onset"] = float(fid.qrs_on)
    out["qrs_offset"] = float(fid.qrs_off)
    out["t_peak"] = float(fid.t_peak)
    out["t_end"] = float(t_end)
    out["qrs_duration_ms"] = (fid.qrs_off - fid.qrs_on) * ms
    out["qt_ms"] = (t_end - fid.qrs_on) * ms
    out["pr_ms"] = (fid.qrs_on - fid.p_on) * ms
    out["p_duration_ms"] = (fid.p_off - fid.p_on) * ms
    axis_ok = not ({"I", "aVF"} & bad)
    out["qrs_axis_deg"] = _axis(y, names, fid.qrs_on, fid.qrs_off) if axis_ok else float("nan")
    out["p_axis_deg"] = _axis(_wave_baseline_removed(y, fid.p_on, fid.p_off, fs), names, fid.p_on, fid.p_off) \
        if axis_ok and has_p else float("nan")
    out["t_axis_deg"] = _axis(y, names, fid.qrs_off, t_end) if axis_ok else float("nan")
    if rr_s is not None:
        out["heart_rate_bpm"] = float(heart_rate)
        out["rr_ms"] = rr_s * 1000.0
        out["qtc_bazett_ms"] = out["qt_ms"] / np.sqrt(rr_s)
        out["qtc_fridericia_ms"] = out["qt_ms"] / np.cbrt(rr_s)
    return out
