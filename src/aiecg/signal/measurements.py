"""Amplitudes, intervals and the frontal QRS axis from a median beat, in the manner of GE's 12SL.

12SL (GE Healthcare, "Marquette 12SL ECG Analysis Program, Physician's Guide") measures on the median beat:
QRS onset and offset globally (over all leads at once), and each wave's amplitude against the isoelectric
level just before QRS onset (the PR segment). We do the same:

* QRS onset/offset: the combined slope (sum over leads of |dx/dt|, smoothed over 6 ms) rises above, and
  falls back below, ``floor + 5 %`` of its QRS peak for at least 10 ms, searching outwards from the first
  and last samples where it exceeds 30 % of that peak (floor: its 10th percentile over the beat).
* Baseline per lead: mean of the 10 ms before QRS onset.
* R: the largest positive deflection inside the QRS. Q: the deepest negative deflection before the first
  positive wave (the initial negative deflection); S: the deepest negative deflection after the start of the
  first positive wave, so the S of an rSR' (right bundle branch block) is an S even when R' is the larger
  wave. A positive wave must reach 30 uV (``MIN_WAVE_MV``) and 5 % of R. A lead without one (QS complex)
  has its negative deflection counted as S (Q = 0), as the voltage criteria read it. Q and S are positive
  depths, as in 12SL's measurement table; absent waves are 0.
* J: the amplitude at QRS offset. T: the signed extreme between 80 ms after QRS offset and the end of the
  beat (or 70 % of the RR interval after QRS onset when a rate is given). P: the signed extreme from the
  start of the window to 30 ms before QRS onset.
* T end: tangent method (the steepest descent after the T peak, extended to the baseline) on the
  root-mean-square over leads of the baseline-corrected beat; QT = T end - QRS onset.
* Frontal QRS axis: the direction of the net QRS areas of I and aVF in Einthoven's triangle,
  atan2(2 aVF / sqrt(3), I) in degrees (-180, 180].

Key scheme of the returned dict: ``{wave}_{lead}`` in mV for wave in P, Q, R, S, J, T (``R_V5``, ``S_V1``,
``T_aVR``); ``qrs_area_{lead}`` in mV*ms; ``qrs_onset``, ``qrs_offset``, ``t_end`` as sample indices into the
median beat; ``qrs_duration_ms``, ``qt_ms``, ``qrs_axis_deg``; with a heart rate also ``heart_rate_bpm``,
``rr_ms`` and ``qtc_bazett_ms`` (Bazett, Heart 1920;7:353).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import uniform_filter1d

from aiecg.ecg import normalise_lead_name
from aiecg.signal.leads import DERIVED_LIMB_LEADS, derive_limb_leads

THR_FRAC = 0.05
MIN_WAVE_MV = 0.03
WAVES: tuple[str, ...] = ("P", "Q", "R", "S", "J", "T")


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    return uniform_filter1d(x, k, mode="nearest") if k > 1 else x


def qrs_bounds(median: np.ndarray, fs: float, r_offset: int) -> tuple[int, int]:
    """Global QRS onset and offset (sample indices) from the combined slope of all leads."""
    x = np.asarray(median, dtype=np.float64)
    n = x.shape[1]
    slope = np.zeros(n)
    slope[1:-1] = np.abs(x[:, 2:] - x[:, :-2]).sum(axis=0) / 2
    slope[0], slope[-1] = slope[1], slope[-2]
    slope = _smooth(slope, max(1, int(round(0.006 * fs))))
    lo = max(1, r_offset - int(round(0.1 * fs)))
    hi = min(n - 1, r_offset + int(round(0.15 * fs)))
    peak = slope[lo:hi].max()
    floor = np.percentile(slope, 10)
    high = np.flatnonzero(slope[lo:hi] > floor + 0.3 * (peak - floor)) + lo
    thr = floor + THR_FRAC * (peak - floor)
    # Onset/offset border a quiet stretch (>= 10 ms below the threshold), so that the zero slope at the tip of
    # a Q, R or S wave inside the QRS does not end the search.
    k = max(1, int(round(0.01 * fs)))
    quiet = (slope <= thr).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(quiet)])
    quiet_ending = np.zeros(n, dtype=bool)  # quiet[t-k+1 .. t] all true
    quiet_ending[k - 1 :] = (csum[k:] - csum[:-k]) == k
    before = np.flatnonzero(quiet_ending[: high[0]])
    onset = int(before[-1]) + 1 if before.size else 0
    quiet_starting = np.zeros(n, dtype=bool)  # quiet[t .. t+k-1] all true
    quiet_starting[: n - k + 1] = quiet_ending[k - 1 :]
    after = np.flatnonzero(quiet_starting[high[-1] + 1 :])
    offset = int(after[0]) + high[-1] + 1 if after.size else n - 1
    return onset, offset


def _t_end(x: np.ndarray, fs: float, start: int, stop: int) -> int:
    """T end by the tangent method on the RMS over leads of the baseline-corrected beat."""
    rms = np.sqrt(np.mean(x * x, axis=0))
    if stop - start < 4:
        return stop
    peak = start + int(np.argmax(rms[start:stop]))
    if peak >= stop - 2:
        return stop
    d = np.gradient(_smooth(rms, max(1, int(round(0.01 * fs)))))
    steep = peak + int(np.argmin(d[peak:stop]))
    if d[steep] >= 0:
        return stop
    return int(min(stop, round(steep + rms[steep] / -d[steep])))


def compute_measurements(
    median: np.ndarray,
    leads: Sequence[str],
    fs: float,
    r_offset: int,
    heart_rate: float | None = None,
) -> dict[str, float]:
    """Per-lead wave amplitudes, QRS onset/offset/duration, QT and frontal axis of a median beat [lead, window].

    Limb leads III, aVR, aVL, aVF are derived from I and II when missing, so a record with I, II and V1-V6
    gives all 12 leads' amplitudes. ``r_offset`` is the R (fiducial) sample of the beat window.
    """
    names = tuple(normalise_lead_name(n) for n in leads)
    x = np.asarray(median, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(names):
        raise ValueError(f"median must be [lead, window] with {len(names)} leads, got shape {x.shape}")
    if "I" in names and "II" in names and any(n not in names for n in DERIVED_LIMB_LEADS):
        x, names = derive_limb_leads(x, names)
    n = x.shape[1]
    ms = 1000.0 / fs
    onset, offset = qrs_bounds(x, fs, r_offset)
    base_len = max(1, int(round(0.01 * fs)))
    b0 = max(0, onset - base_len)
    baseline = x[:, b0:onset].mean(axis=1) if onset > b0 else x[:, 0]
    y = x - baseline[:, None]

    out: dict[str, float] = {}
    qrs = y[:, onset:offset]
    t_start = min(n, offset + int(round(0.08 * fs)))
    t_stop = n
    if heart_rate is not None and np.isfinite(heart_rate) and heart_rate > 0:
        t_stop = min(n, onset + int(round(0.7 * 60.0 / heart_rate * fs)))
    p_stop = max(0, onset - int(round(0.03 * fs)))
    for i, lead in enumerate(names):
        q = qrs[i]
        r_amp = float(q.max())
        positive = np.flatnonzero(q >= max(MIN_WAVE_MV, 0.05 * r_amp))
        if r_amp >= MIN_WAVE_MV and positive.size:
            first = int(positive[0])  # start of the first positive wave (r of an rSR', R of a qR)
            q_amp = float(max(0.0, -q[:first].min())) if first > 0 else 0.0
            s_amp = float(max(0.0, -q[first:].min()))
        else:
            r_amp, q_amp, s_amp = max(r_amp, 0.0), 0.0, float(max(0.0, -q.min()))
        out[f"R_{lead}"] = r_amp
        out[f"Q_{lead}"] = q_amp
        out[f"S_{lead}"] = s_amp
        out[f"J_{lead}"] = float(y[i, min(offset, n - 1)])
        if t_stop > t_start:
            seg = y[i, t_start:t_stop]
            out[f"T_{lead}"] = float(seg[np.argmax(np.abs(seg))])
        else:
            out[f"T_{lead}"] = float("nan")
        if p_stop > 0:
            seg = y[i, :p_stop]
            out[f"P_{lead}"] = float(seg[np.argmax(np.abs(seg))])
        else:
            out[f"P_{lead}"] = float("nan")
        out[f"qrs_area_{lead}"] = float(q.sum() * ms)

    t_end = _t_end(y, fs, t_start, t_stop) if t_stop > t_start else n
    out["qrs_onset"] = float(onset)
    out["qrs_offset"] = float(offset)
    out["t_end"] = float(t_end)
    out["qrs_duration_ms"] = (offset - onset) * ms
    out["qt_ms"] = (t_end - onset) * ms
    if "I" in names and "aVF" in names:
        area_i, area_avf = out["qrs_area_I"], out["qrs_area_aVF"]
        out["qrs_axis_deg"] = float(np.degrees(np.arctan2(2.0 * area_avf / np.sqrt(3.0), area_i)))
    else:
        out["qrs_axis_deg"] = float("nan")
    if heart_rate is not None and np.isfinite(heart_rate) and heart_rate > 0:
        rr_ms = 60000.0 / heart_rate
        out["heart_rate_bpm"] = float(heart_rate)
        out["rr_ms"] = rr_ms
        out["qtc_bazett_ms"] = out["qt_ms"] / np.sqrt(rr_ms / 1000.0)
    return out
