"""R-peak detection, beat windows, beat and record quality control, and the median beat.

The pipeline for one record (``extract_beats``):

1. Lead QC (``lead_quality``, see ``aiecg.signal.quality``): constant, heartbeat-free and noisy leads; a bad
   model-input lead fails the record, another bad lead is noted and left out of R-peak detection.
2. R peaks on one combined lead: the root-mean-square over the usable leads of the 5-30 Hz band-passed signal. This
   emphasises the QRS of whichever leads carry it (so a small QRS in one lead or an inverted complex costs
   nothing) and suppresses P and T waves, whose energy lies mostly below 5 Hz. On it runs neurokit2's own
   detector (``ecg_findpeaks(method="neurokit")``: thresholded, smoothed absolute gradient, after Elgendi's
   QRS-block approach; Makowski et al., Behav Res Methods 2021;53:1689): < 1 ms for 10 s, where most of
   neurokit2's other detectors take 4-60 ms, and no misses or false beats on our synthetic records (45-157
   bpm, with noise and wander). Only the detector is used, never ``ecg_process``. Its threshold follows a
   0.75 s moving average, so in long RR intervals it can fire on noise, a P or a T wave; candidates with < 40 %
   of the upper-quartile candidate's combined energy are moved to the nearest undetected QRS, kept where they
   are as an occasional weaker (premature ventricular) beat, and dropped otherwise (``snap_to_qrs``).
3. Alignment: each peak moves to the extremum of the record's dominant QRS deflection (the lead and polarity
   with the largest, most one-sided QRS deflection; usually an R wave, a QS/S wave where that dominates),
   then every beat is shifted by the lag (within +-``max_shift_ms``) that maximises its normalised
   cross-correlation with a first-pass median over the QRS of the usable leads. Precise alignment is what keeps
   the median's QRS sharp.
4. Beat QC: a beat is clean when its window lies inside the strip, its RR interval is regular and it
   correlates with the template (see ``BeatConfig``). The median beat is the per-lead, per-sample median
   over clean beats (robust to the occasional artefact that passes QC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from aiecg.signal.fastops import median as _median
from aiecg.signal.fastops import sosfiltfilt
from aiecg.signal.quality import (
    QualityConfig,
    clipped_leads,
    constant_leads,
    noisy_leads,
    record_verdict,
    silent_leads,
)


@dataclass(frozen=True)
class BeatConfig:
    """Beat windows and beat QC.

    Attributes:
        window: samples per beat (400 at 500 Hz = 800 ms: P wave to the end of T at resting rates).
        r_offset: sample of the fiducial (R) point in the window (150 = 300 ms before, 500 ms after).
        fs: sampling rate in Hz the windows are defined for; ``extract_beats`` needs ``fs == cfg.fs``.
        min_clean_beats: fewer clean beats than this fails the record (3: a median of 3 still rejects one
            outlier per sample; a 10 s strip at 40 bpm holds 6).
        corr_threshold: minimum correlation of a beat with the first-pass median over the QRS and early ST
            of all leads (80 ms before to 120 ms after R; each lead centred): 0.9, since clean sinus beats
            correlate > 0.95 with their median while premature ventricular beats, misdetections and
            artefacts fall below 0.9.
        rr_tolerance: a beat is premature when the RR interval before it is below (1 - tol) x the median
            RR, late when above (1 + tol) x (0.2: premature atrial and ventricular beats come at <= 80 % of
            the cycle, while beat-to-beat sinus arrhythmia at rest is mostly within +-10-15 %). The beat that
            ends the compensatory pause after a premature beat is kept (it is conducted normally).
        max_shift_ms: the cross-correlation alignment searches lags within +- this.
        quality: thresholds of the record QC.
    """

    window: int = 400
    r_offset: int = 150
    fs: float = 500.0
    min_clean_beats: int = 3
    corr_threshold: float = 0.9
    rr_tolerance: float = 0.2
    max_shift_ms: float = 20.0
    quality: QualityConfig = field(default_factory=QualityConfig)


@dataclass(frozen=True)
class BeatSet:
    """The beats of one record.

    Attributes:
        median: float32 [lead, window] in mV, the median over clean beats (zeros when there is none).
        beats: float32 [n_clean, lead, window], the clean individual beats.
        r_peaks: int64 sample indices of all detected beats in the strip (after alignment).
        clean: bool per r_peak, True when the beat was used for the median.
        heart_rate: bpm from the median RR interval of all detected beats (NaN with fewer than 2 beats).
        qc_ok: True when the record passed record and beat QC.
        qc_reason: '' when ok, else why not (the first failure found).
        bad_leads: lead -> why it is unusable (flat, noisy, saturated), also where the record stays usable.
        qc_notes: warnings that do not fail the record (a bad lead outside the model inputs, Einthoven).
        paced: '' when no pacing spikes were found, else the paced chamber ('ventricular', 'atrial',
            'dual-chamber' or 'undetermined'; ``aiecg.signal.quality.pacing_timings``). A paced record is
            measured and stays usable; the flag lets a cohort exclude it by name.
    """

    median: np.ndarray
    beats: np.ndarray
    r_peaks: np.ndarray
    clean: np.ndarray
    heart_rate: float
    qc_ok: bool
    qc_reason: str
    bad_leads: dict[str, str] = field(default_factory=dict)
    qc_notes: tuple[str, ...] = ()
    paced: str = ""


# ----------------------------------------------------------------------------------------------- record QC


def lead_quality(
    signal: np.ndarray, fs: float, leads: Sequence[str], cfg: QualityConfig | None = None,
    r_peaks: np.ndarray | None = None,
) -> dict[str, str]:
    """Unusable leads of a FILTERED strip, lead -> reason: constant, without a heartbeat (needs R peaks;
    detected here when not given), or noisy. Clipping is judged on the raw strip (``detect_clipping``)."""
    cfg = cfg or QualityConfig()
    x = np.asarray(signal, dtype=np.float64)
    names = list(leads)
    if x.ndim != 2 or x.shape[0] != len(names):
        raise ValueError(f"signal must be [lead, time] with {len(names)} leads, got shape {x.shape}")
    bad = constant_leads(x, names)
    for lead, reason in noisy_leads(x, fs, names, cfg).items():
        bad.setdefault(lead, reason)
    if r_peaks is None:
        good = [i for i, n in enumerate(names) if n not in bad]
        r_peaks = detect_r_peaks(x[good], fs) if good else np.zeros(0, np.int64)
    for lead, reason in silent_leads(x, fs, names, r_peaks, cfg).items():
        bad.setdefault(lead, reason)
    return {n: bad[n] for n in names if n in bad}  # in lead order


def assess_quality(
    signal: np.ndarray, fs: float, leads: Sequence[str], cfg: QualityConfig | None = None
) -> tuple[bool, str]:
    """Record-level QC of a FILTERED strip: (ok, reason). A flat or noisy lead fails the record when it is
    one of the model inputs (I, II, V1-V6); see ``aiecg.signal.quality``."""
    cfg = cfg or QualityConfig()
    ok, reason, _ = record_verdict(lead_quality(signal, fs, leads, cfg))
    return ok, reason


def detect_clipping(signal: np.ndarray, fs: float, leads: Sequence[str], min_run_s: float = 0.2,
                    r_peaks_s: np.ndarray | None = None) -> tuple[bool, str]:
    """Saturation on the RAW strip (before filtering, which would smooth a clipped plateau away): a lead at its
    own extreme for ``min_run_s`` or longer, away from its baseline or over other leads' QRS complexes
    (``aiecg.signal.quality.clipped_leads``). Returns (ok, reason), e.g. (False, 'saturated lead V3').
    """
    bad = clipped_leads(signal, fs, list(leads), r_peaks_s, QualityConfig(saturation_run_s=min_run_s))
    if bad:
        return False, next(iter(bad.values()))
    return True, ""


@lru_cache(maxsize=16)
def _qrs_band(fs: float) -> np.ndarray:
    return sps.butter(2, [5.0, min(30.0, 0.45 * fs)], "bandpass", fs=fs, output="sos")


def qrs_energy(signal: np.ndarray, fs: float) -> np.ndarray:
    """The combined detection lead: RMS over leads of the 5-30 Hz band-passed signal (mV)."""
    x = sosfiltfilt(_qrs_band(float(fs)), np.asarray(signal, dtype=np.float64))
    return np.sqrt(np.mean(x * x, axis=0))


def detect_r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """First-pass R peaks (int64 sample indices) of a multi-lead ECG, on the combined lead ``qrs_energy``.

    A candidate with less than 40 % of the upper-quartile candidate's combined energy lies off the QRS (the detector
    can fire on a P wave or a pacing artefact ahead of the complex): it is moved to the nearest undetected QRS
    within +-0.3 s (``snap_to_qrs``), kept in place with at least 20 % (a premature ventricular beat), and
    dropped otherwise; two candidates on one QRS become one.
    """
    import neurokit2 as nk

    combined = qrs_energy(signal, fs)
    if not np.any(combined > 0):
        return np.zeros(0, dtype=np.int64)
    # The detector's moving averages need a run-in: pad with the median level so that beats in the first and
    # last half second are found too, then keep the peaks inside the strip.
    pad = min(int(round(fs)), combined.size - 1)
    padded = np.pad(combined, pad, mode="constant", constant_values=float(np.median(combined)))
    peaks = nk.ecg_findpeaks(padded, sampling_rate=int(round(fs)), method="neurokit")["ECG_R_Peaks"]
    peaks = np.asarray(peaks, dtype=np.int64) - pad
    peaks = peaks[(peaks >= 0) & (peaks < combined.size)]
    if peaks.size:
        # The detector's threshold follows a 0.75 s moving average, so in long RR intervals (bradycardia) it
        # can fire on noise or a P wave; a QRS carries far more band energy than that.
        # the upper quartile, not the median: when the detector also fires on every T wave, half the candidates
        # are T waves
        peaks = snap_to_qrs(combined, peaks, 0.4 * float(np.percentile(combined[peaks], 75)), fs)
    return peaks


def snap_to_qrs(combined: np.ndarray, peaks: np.ndarray, level: float, fs: float,
                search_s: float = 0.3, merge_s: float = 0.12, keep_share: float = 0.5) -> np.ndarray:
    """Move candidates whose combined energy is below ``level`` to the energy maximum of the nearest QRS
    (a stretch above ``level``) within +-``search_s`` that no other candidate holds yet. A candidate whose
    nearest QRS is already detected stays where it is if it still has ``keep_share`` x ``level`` and follows a
    detected beat (a premature ventricular beat carries less 5-30 Hz energy than a sinus beat), unless such
    candidates follow a quarter of the beats or more (then they are T waves); else it is dropped.
    Candidates closer than ``merge_s`` become one (the more energetic).
    """
    n = combined.size
    above = combined >= level
    k, half, merge = int(round(search_s * fs)), int(round(0.05 * fs)), merge_s * fs
    strong = [int(p) for p in peaks if above[p]]
    out = list(strong)
    weak = []
    for p in peaks:
        if above[p]:
            continue
        lo, hi = max(0, p - k), min(n, p + k + 1)
        idx = np.flatnonzero(above[lo:hi]) + lo
        target = None
        if idx.size:
            near = int(idx[np.argmin(np.abs(idx - p))])
            a, b = max(0, near - half), min(n, near + half + 1)
            target = a + int(np.argmax(combined[a:b]))
            if any(abs(target - q) < merge for q in strong):
                target = None  # that QRS is detected already
        if target is not None:
            out.append(target)
        elif combined[p] >= keep_share * level and any(q < p for q in strong):
            weak.append(int(p))
    # A premature beat is an exception; weak candidates behind a quarter of the beats or more are the detector
    # firing on T waves, not beats.
    if len(weak) <= 0.25 * max(len(strong), 1):
        out += weak
    if not out:
        return np.zeros(0, dtype=np.int64)
    out_a = np.unique(np.asarray(out, dtype=np.int64))
    merged = [int(out_a[0])]
    for p in out_a[1:]:
        if p - merged[-1] < merge:
            if combined[p] > combined[merged[-1]]:
                merged[-1] = int(p)
        else:
            merged.append(int(p))
    return np.asarray(merged, dtype=np.int64)


def _windows(n: int, centres: np.ndarray, before: int, after: int) -> tuple[np.ndarray, np.ndarray]:
    """Index array [beat, before + after] around ``centres`` clipped to the strip, and the inside mask."""
    idx = centres[:, None] + np.arange(-before, after)[None, :]
    inside = (centres - before >= 0) & (centres + after <= n)
    return np.clip(idx, 0, n - 1), inside


def refine_to_dominant(signal: np.ndarray, peaks: np.ndarray, fs: float, search_ms: float = 60.0) -> np.ndarray:
    """Move each peak to the extremum of the record's dominant QRS deflection within +- ``search_ms``.

    The dominant deflection is the lead and polarity with the largest one-sided QRS deflection (median over
    beats of max(x) minus max(-x) around the peaks); one lead and one polarity for all beats, so that the
    fiducial point means the same thing in every beat.
    """
    if peaks.size == 0:
        return peaks
    x = np.asarray(signal)
    k = max(1, int(round(search_ms * fs / 1000)))
    idx, _ = _windows(x.shape[1], peaks, k, k + 1)
    seg = x[:, idx]  # [lead, beat, 2k+1]
    seg = seg - seg[:, :, :1] * 0.5 - seg[:, :, -1:] * 0.5  # local baseline: mean of the window ends
    pos = _median(seg.max(axis=2), axis=1)
    neg = _median((-seg).max(axis=2), axis=1)
    score = pos - neg
    lead = int(np.argmax(np.abs(score)))
    polarity = 1.0 if score[lead] >= 0 else -1.0
    offsets = np.argmax(polarity * seg[lead], axis=1) - k
    return np.clip(peaks + offsets, 0, x.shape[1] - 1).astype(np.int64)


def _align_xcorr(
    x: np.ndarray, peaks: np.ndarray, template: np.ndarray, r_offset: int, before: int, after: int, shift: int
) -> np.ndarray:
    """Shift each peak by the lag in [-shift, shift] maximising the normalised cross-correlation of the QRS
    segment [r - before, r + after) (all leads) with the template's."""
    n = x.shape[1]
    seg_len = before + after
    tmpl = template[:, r_offset - before : r_offset + after]
    tmpl = tmpl - tmpl.mean(axis=1, keepdims=True)
    idx = peaks[:, None] + np.arange(-before - shift, after + shift)[None, :]
    ok = (idx[:, 0] >= 0) & (idx[:, -1] < n)
    if not ok.any():
        return peaks
    ext = x[:, idx[ok]]  # [lead, beat, seg_len + 2 shift]
    win = np.lib.stride_tricks.sliding_window_view(ext, seg_len, axis=2)  # [lead, beat, lags, seg_len]
    win = win - win.mean(axis=3, keepdims=True)
    num = np.einsum("lbks,ls->bk", win, tmpl)
    den = np.sqrt(np.einsum("lbks,lbks->bk", win, win)) + 1e-12
    lag = np.argmax(num / den, axis=1) - shift
    out = peaks.copy()
    out[ok] = peaks[ok] + lag
    return out


def _rr_regular(peaks: np.ndarray, fs: float, tol: float) -> tuple[np.ndarray, float]:
    """Per beat: True unless premature or late by RR (see ``BeatConfig.rr_tolerance``); and median RR in s."""
    regular = np.ones(peaks.size, dtype=bool)
    if peaks.size < 2:
        return regular, float("nan")
    rr = np.diff(peaks) / fs
    rr_med = float(_median(rr))
    premature = rr < (1 - tol) * rr_med
    late = rr > (1 + tol) * rr_med
    # rr[i] precedes beat i + 1; a late interval that follows a premature one is a compensatory pause.
    after_premature = np.concatenate([[False], premature[:-1]])
    regular[1:] = ~premature & ~(late & ~after_premature)
    return regular, rr_med


def _centred_corr(beats: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Correlation of each beat [beat, lead, time] with the template [lead, time], every lead centred first
    (so a per-lead baseline offset does not count), all leads pooled (so large leads weigh more)."""
    a = beats - beats.mean(axis=-1, keepdims=True)
    b = template - template.mean(axis=-1, keepdims=True)
    a = a.reshape(len(a), -1)
    b = b.reshape(-1)
    return (a @ b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b) + 1e-12)


def extract_beats(
    signal: np.ndarray, fs: float, leads: Sequence[str], cfg: BeatConfig | None = None
) -> BeatSet:
    """Detect, align and QC the beats of a pre-processed strip [lead, time] (mV) and take their median.

    Returns a ``BeatSet`` even when QC fails (``qc_ok`` False with the reason), so callers can store the
    reason; the median is then computed from whatever clean beats there are (zeros if none).

    Raises:
        ValueError: ``fs`` differs from ``cfg.fs`` (resample with ``preprocess`` first) or the shapes disagree.
    """
    cfg = cfg or BeatConfig()
    x = np.asarray(signal, dtype=np.float32)
    names = list(leads)
    if not np.isclose(fs, cfg.fs):
        raise ValueError(f"signal is at {fs} Hz but the beat windows are defined at {cfg.fs} Hz; resample first")
    if x.ndim != 2 or x.shape[0] != len(names):
        raise ValueError(f"signal must be [lead, time] with {len(names)} leads, got shape {x.shape}")
    if not 0 <= cfg.r_offset < cfg.window:
        raise ValueError(f"r_offset={cfg.r_offset} must lie inside the window of {cfg.window} samples")
    n_leads, n = x.shape
    before, after = cfg.r_offset, cfg.window - cfg.r_offset

    bad = constant_leads(x, names)
    for lead, why in noisy_leads(x, fs, names, cfg.quality).items():
        bad.setdefault(lead, why)
    good = [i for i, name in enumerate(names) if name not in bad] or list(range(n_leads))
    peaks = detect_r_peaks(x[good], fs)
    for lead, why in silent_leads(x, fs, names, peaks, cfg.quality).items():
        bad.setdefault(lead, why)
    bad = {name: bad[name] for name in names if name in bad}
    ok, reason, notes = record_verdict(bad)
    good = [i for i, name in enumerate(names) if name not in bad] or list(range(n_leads))
    peaks = refine_to_dominant(x[good], peaks, fs)
    if peaks.size:
        # an extremum on the strip's first or last sample lies outside it: a cut-off beat, not a fiducial point
        peaks = np.unique(peaks[(peaks > 0) & (peaks < n - 1)])

    def empty(msg: str) -> BeatSet:
        return BeatSet(
            median=np.zeros((n_leads, cfg.window), np.float32),
            beats=np.zeros((0, n_leads, cfg.window), np.float32),
            r_peaks=peaks, clean=np.zeros(peaks.size, bool), heart_rate=hr,
            qc_ok=False, qc_reason=reason or msg, bad_leads=bad, qc_notes=tuple(notes),
        )

    hr = float(60.0 / (_median(np.diff(peaks)) / fs)) if peaks.size >= 2 else float("nan")
    _, inside = _windows(n, peaks, before, after)
    if not inside.any():
        return empty("no complete beat in the strip" if peaks.size else "no beats detected")

    regular, rr_med = _rr_regular(peaks, fs, cfg.rr_tolerance)
    first = inside & regular if (inside & regular).sum() >= 2 else inside
    idx, _ = _windows(n, peaks, before, after)
    template = _median(x[:, idx[first]], axis=1)

    shift = int(round(cfg.max_shift_ms * fs / 1000))
    qrs_before, qrs_after = int(round(0.05 * fs)), int(round(0.08 * fs))
    if shift > 0 and before >= qrs_before and after >= qrs_after:
        peaks = _align_xcorr(x[good], peaks, template[good], cfg.r_offset, qrs_before, qrs_after, shift)
        hr = float(60.0 / (_median(np.diff(peaks)) / fs)) if peaks.size >= 2 else float("nan")
        idx, inside = _windows(n, peaks, before, after)
        regular, rr_med = _rr_regular(peaks, fs, cfg.rr_tolerance)
        first = inside & regular if (inside & regular).sum() >= 2 else inside
        if not inside.any():
            return empty("no complete beat in the strip")
        template = _median(x[:, idx[first]], axis=1)

    # Correlation over the QRS and early ST (80 ms before to 120 ms after R), each lead centred: ectopic beats
    # differ most there, the median's amplitudes depend on it, and it stays clear of the next P wave at high
    # rates and of the respiratory variation of T and of per-lead baseline offsets.
    c0 = max(0, cfg.r_offset - int(round(0.08 * fs)))
    c1 = min(cfg.window, cfg.r_offset + int(round(0.12 * fs)))
    stack = x[:, idx].transpose(1, 0, 2)  # [beat, lead, window]
    corr = _centred_corr(stack[:, good, c0:c1], template[good, c0:c1])
    clean = inside & regular & (corr >= cfg.corr_threshold)

    beats = np.ascontiguousarray(stack[clean], dtype=np.float32)
    median = _median(beats, axis=0).astype(np.float32) if len(beats) else np.zeros((n_leads, cfg.window), np.float32)
    if ok and len(beats) < cfg.min_clean_beats:
        ok, reason = False, f"too few clean beats ({len(beats)} < {cfg.min_clean_beats})"
    return BeatSet(
        median=median, beats=beats, r_peaks=peaks.astype(np.int64), clean=clean, heart_rate=hr,
        qc_ok=ok, qc_reason=reason, bad_leads=bad, qc_notes=tuple(notes),
    )
