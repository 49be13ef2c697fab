"""Record quality control: what makes a lead, or a record, unusable; and plausibility of the result.

The checks judge usability, not appearance, and every threshold is relative to the lead's own scale:

* Flat lead (disconnected electrode, missing lead): the lead is exactly constant, or it carries no
  heartbeat: its beat-synchronous part (the average QRS over the detected beats) is no larger than the
  beat-to-beat residual expected from noise, and under 2 % of the typical lead's QRS. A quiet lead (a
  near-isoelectric aVL) or a low-gain lead still shows a QRS in every beat, so it is not flat.
* Saturation (clipping), on the RAW strip: a lead sitting at its own extreme value (the recording's rail)
  for a physiologically impossible time (200 ms), where that plateau is not the lead's baseline. A lead
  holding exactly 0 between beats sits at its baseline; a lead pinned at its rail sits far from it, or
  swallows the QRS complexes the other leads show.
* Noise: more than ``noise_ratio`` of the lead's power at or above ``noise_hz`` and an RMS of that part
  above ``noise_mv`` (so ordinary amplifier noise on a quiet lead does not count).
* Plausibility of the measurements (``plausibility``): QRS 40-300 ms, heart rate 20-250 bpm and the RR
  intervals consistent with the number of beats; gross failures (R over-detection, a garbage median) are
  flagged instead of passed. A wide QRS is a finding, not a fault: a left bundle-branch block lasts 140-240 ms,
  a paced or hyperkalaemic QRS longer, and LBBB and LVH travel together, so rejecting them would bias an LVH
  cohort; only a QRS no heart produces (over 300 ms: a delineation failure) fails the record.
* Pacing (``pacing_spikes``, ``pacing_verdict``): a pacemaker's stimulus artefact, a step of at least 0.15 mV
  within 2 ms from a quiet baseline that is over within 4 ms (no physiological wave changes that fast from rest;
  a biphasic or filter-smoothed artefact whose first phase precedes the step counts where two leads record it at
  once), at the same time before the QRS in at least a quarter of the beats, in a lead that passed the lead
  checks (a noisy lead's oscillation is no stimulus), looked for at 500 Hz or faster (``PACING_MIN_FS``). A
  paced record is measured (its spikes blanked first, so the QRS does not start at the spike) and flagged
  ``paced`` with the chamber where the spike-to-QRS timing tells it; whether it enters a cohort is the
  researcher's choice (training excludes it by default, by name: ``aiecg.data``).
* Einthoven's law (``einthoven_note``): where a file stores I, II and III, III = II - I within tolerance;
  a failure points to a wrong per-lead gain and is a warning in the record's QC notes, not a rejection.

A bad lead that is not a model input (III, aVR, aVL, aVF; the model reads I, II, V1-V6) leaves the record
usable: the reason goes to the QC notes and that lead's measurements are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aiecg.ecg import MODEL_LEADS
from aiecg.signal.fastops import median


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the record QC.

    Attributes:
        flat_snr: a lead is flat when its average QRS is at most this many times the residual expected from
            noise alone (1 / sqrt(beats) of the per-beat residual) ...
        flat_share: ... and at most this share of the median lead's average QRS (peak to peak).
        saturation_run_s: a plateau at the lead's extreme lasting this long is clipping (200 ms: real PTB-XL
            and CinC records hold flat extremes of up to ~110 ms).
        saturation_level: ... when the plateau lies at least this share of the lead's range away from the
            median of the lead's other samples (its baseline), or covers a QRS of the other leads.
        noise_hz: frequencies at or above this (Hz) count as noise (the QRS has little power above 40 Hz).
        noise_ratio: a lead is noisy when more than this fraction of its power lies above ``noise_hz`` ...
        noise_mv: ... and that high-frequency part has an RMS above this (mV).
        qrs_min_ms, qrs_max_ms, hr_min_bpm, hr_max_bpm: plausible ranges of the measured QRS duration and
            heart rate.
        rr_consistency: the heart rate from the beat count over the strip and from the median RR interval
            must agree within this share.
        einthoven_tolerance: III - (II - I) may have an RMS of up to this share of the RMS of III (plus 40 uV).
        spike_mv, spike_share: a pacing spike steps by at least ``spike_mv`` within 2 ms; a record is paced when
            spikes precede the QRS at one timing in at least ``spike_share`` of its beats.
    """

    flat_snr: float = 2.0
    flat_share: float = 0.02
    saturation_run_s: float = 0.2
    saturation_level: float = 0.25
    noise_hz: float = 40.0
    noise_ratio: float = 0.25
    noise_mv: float = 0.03
    qrs_min_ms: float = 40.0
    qrs_max_ms: float = 300.0
    hr_min_bpm: float = 20.0
    hr_max_bpm: float = 250.0
    rr_consistency: float = 0.3
    einthoven_tolerance: float = 0.1
    spike_mv: float = 0.15
    spike_share: float = 0.25


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of the runs of True in a 1-D mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def constant_leads(x: np.ndarray, names: Sequence[str]) -> dict[str, str]:
    """Leads that hold one value over the whole strip (all-zero or missing leads)."""
    ptp = np.ptp(np.asarray(x), axis=1)
    return {names[i]: f"flat lead {names[i]}" for i in np.flatnonzero(ptp <= 1e-9)}


def silent_leads(x: np.ndarray, fs: float, names: Sequence[str], r_peaks: np.ndarray,
                 cfg: QualityConfig | None = None) -> dict[str, str]:
    """Leads without a heartbeat: the average QRS (+-60 ms around the R peaks) of the filtered strip is within
    noise of zero and tiny against the other leads' (see ``QualityConfig.flat_snr`` and ``flat_share``)."""
    cfg = cfg or QualityConfig()
    x = np.asarray(x)
    half = int(round(0.06 * fs))
    peaks = np.asarray(r_peaks, dtype=np.int64)
    peaks = peaks[(peaks - half >= 0) & (peaks + half < x.shape[1])]
    if peaks.size < 3:
        return {}
    seg = x[:, peaks[:, None] + np.arange(-half, half + 1)[None, :]].astype(np.float64, copy=False)  # [lead, beat, t]
    seg = seg - seg.mean(axis=2, keepdims=True)
    avg = seg.mean(axis=1)
    signal = np.sqrt((avg * avg).mean(axis=1))
    resid = np.sqrt(((seg - avg[:, None, :]) ** 2).mean(axis=(1, 2))) / np.sqrt(peaks.size)
    ptp = np.ptp(avg, axis=1)
    typical = float(median(ptp))
    silent = (signal <= cfg.flat_snr * resid) & (ptp <= cfg.flat_share * typical)
    return {names[i]: f"flat lead {names[i]}" for i in np.flatnonzero(silent)}


def noisy_leads(x: np.ndarray, fs: float, names: Sequence[str], cfg: QualityConfig | None = None) -> dict[str, str]:
    """Leads with excessive high-frequency noise (share and RMS of the power at or above ``noise_hz``)."""
    cfg = cfg or QualityConfig()
    x = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[1], d=1.0 / fs)
    total = spectrum.sum(axis=1)
    high = spectrum[:, freqs >= cfg.noise_hz].sum(axis=1)
    ratio = high / np.maximum(total, 1e-30)
    high_rms = np.sqrt(2.0 * high) / x.shape[1]  # Parseval, one-sided spectrum
    noisy = (ratio > cfg.noise_ratio) & (high_rms > cfg.noise_mv)
    return {names[i]: f"excessive noise in lead {names[i]} ({100 * ratio[i]:.0f}% of power >= {cfg.noise_hz:g} Hz)"
            for i in np.flatnonzero(noisy)}


def clipped_leads(raw: np.ndarray, fs: float, names: Sequence[str], r_peaks_s: np.ndarray | None = None,
                  cfg: QualityConfig | None = None) -> dict[str, str]:
    """Leads of the RAW strip held at their rail (see the module docstring); ``r_peaks_s`` are the beat times
    in seconds (from the other leads), used to tell a clipped plateau that swallows QRS complexes."""
    cfg = cfg or QualityConfig()
    x = np.asarray(raw, dtype=np.float64)
    min_run = max(2, int(round(cfg.saturation_run_s * fs)))
    beats = np.zeros(0, np.int64) if r_peaks_s is None else np.rint(np.asarray(r_peaks_s) * fs).astype(np.int64)
    out: dict[str, str] = {}
    x = x[: len(names)]
    # all leads at once: a lead with fewer than min_run samples at either extreme has no plateau to judge
    lo_all, hi_all = x.min(axis=1), x.max(axis=1)
    tol_all = np.maximum(1e-6, 1e-4 * (hi_all - lo_all))[:, None]
    at_hi = (np.abs(x - hi_all[:, None]) <= tol_all).sum(axis=1) >= min_run
    at_lo = (np.abs(x - lo_all[:, None]) <= tol_all).sum(axis=1) >= min_run
    for i in np.flatnonzero(at_hi | at_lo):
        lead = names[i]
        row = x[i]
        lo, hi = float(row.min()), float(row.max())
        span = hi - lo
        if span <= 0:
            continue  # constant: a flat lead, not a clipped one
        tol = max(1e-6, 1e-4 * span)
        for extreme in (hi, lo):
            at = np.abs(row - extreme) <= tol
            starts, ends = _runs(at)
            long = (ends - starts) >= min_run
            if not long.any():
                continue
            # the lead's level off the plateau: its baseline, unless the plateau is where it rests
            rest = row[~at]
            baseline = float(np.median(rest)) if rest.size else extreme
            far = abs(extreme - baseline) >= cfg.saturation_level * span
            swallows = any(((beats >= s) & (beats < e)).any() for s, e in zip(starts[long], ends[long]))
            if far or swallows:
                out[lead] = f"saturated lead {lead}"
                break
    return out


PACING_MIN_FS = 500.0
"""Pacing spikes are looked for only at this sampling rate or above: a stimulus lasts 0.1-1 ms, and its artefact
is a step within 2 ms only where a sample falls every 2 ms; at lower rates the recorder's anti-aliasing filter
has removed it (PTB-XL's 100 Hz copies), and every QRS upstroke would be a step within one sample."""
PACING_NOT_CHECKED = "pacing not checked"
"""How a record below ``PACING_MIN_FS`` says so in its ``qc_notes`` (not paced is then a claim nobody checked)."""


def _steps(a: np.ndarray, k: int, spike_mv: float, skip: int) -> tuple[np.ndarray, np.ndarray]:
    """(lead, sample) of the steps ``a`` [lead, t] (the change from t to t + k) of at least ``spike_mv`` that are
    5x the largest step over the 8 ms starting ``skip`` steps before and twice the step 4 ms after."""
    first = (skip + 3) * k
    lead, t = np.nonzero(a[:, first:a.shape[1] - 2 * k] >= spike_mv)
    t = t + first
    if not t.size:
        return lead, t
    step = a[lead, t]
    before = np.max([a[lead, t - j * k] for j in range(skip, skip + 4)], axis=0)
    hit = (5.0 * before <= step) & (2.0 * a[lead, t + 2 * k] <= step)
    return lead[hit], t[hit]


def pacing_spikes(raw: np.ndarray, fs: float, cfg: QualityConfig | None = None) -> np.ndarray:
    """Candidate pacing artefacts on the RAW strip [lead, time]: sample indices where a lead steps by at least
    ``spike_mv`` within 2 ms, at least 5 times faster than over the 8 ms before (a quiet baseline) and twice as
    fast as 4 ms later (over at once). Physiological waves, sharp R peaks included, accelerate over several ms.

    A biphasic stimulus (pulse and recharge) or one the recorder's low-pass filter spreads over a few samples
    puts its own first phase into those 8 ms; its step counts against the 8 ms before the artefact's 6 ms, when
    at least two leads step at the same time (within 2 ms): a stimulus is a field that several electrodes
    record at once (what one limb electrode picks up shows in two limb leads at least), a notch or a glitch is
    one lead's. None below ``PACING_MIN_FS``."""
    cfg = cfg or QualityConfig()
    x = np.asarray(raw, dtype=np.float64)
    k = max(1, int(round(0.002 * fs)))
    if fs < PACING_MIN_FS or x.shape[1] <= 9 * k:
        return np.zeros(0, np.int64)
    a = np.abs(x[:, k:] - x[:, :-k])  # a[:, t]: the step from t to t + k
    _, sharp = _steps(a, k, cfg.spike_mv, 1)
    lead, t = _steps(a, k, cfg.spike_mv, 3)
    near = np.zeros(a.shape, dtype=bool)  # near[l, s]: lead l steps within 2 ms of s
    for d in range(-k, k + 1):
        near[lead, np.clip(t + d, 0, a.shape[1] - 1)] = True
    shared = near.sum(axis=0)[t] >= 2  # its own lead and another
    steps = np.unique(np.concatenate([sharp, t[shared]]))
    # one artefact lasts at most 6 ms: a step within 6 ms of an earlier one is its return or recharge
    first = np.ones(steps.size, dtype=bool)
    last = -np.inf
    for i, step in enumerate(steps):
        first[i] = step - last > 3 * k
        last = step if first[i] else last
    return steps[first] + k


def pacing_timings(spikes_s: np.ndarray, r_peaks_s: np.ndarray, cfg: QualityConfig | None = None) -> list[float]:
    """The timings (s before the R peak, negative) at which pacing spikes precede the beats; empty when the
    recording is not paced.

    A spike counts for a beat when it lies 6-350 ms before its R peak; a timing counts when spikes within +-6 ms
    of it precede at least ``spike_share`` of the beats (a stimulus is locked to the beat it starts, noise is
    not). Timings at least 40 ms apart are reported apart (atrial and ventricular spikes of dual-chamber pacing).
    """
    cfg = cfg or QualityConfig()
    spikes, peaks = np.asarray(spikes_s, dtype=np.float64), np.asarray(r_peaks_s, dtype=np.float64)
    if peaks.size < 3 or spikes.size == 0:
        return []
    lag = spikes[None, :] - peaks[:, None]  # [beat, spike]
    beat, which = np.nonzero((lag >= -0.35) & (lag <= -0.006))
    lags = lag[beat, which]
    support = [(np.unique(beat[np.abs(lags - c) <= 0.006]).size, float(c)) for c in lags]
    out: list[float] = []
    for count, c in sorted(support, reverse=True):
        if count < max(2.0, cfg.spike_share * peaks.size):
            break
        if all(abs(c - o) >= 0.04 for o in out):
            out.append(c)
    return sorted(out)


def pacing_chamber(timings: list[float], qrs_on_s: float, p_on_s: float) -> str:
    """The paced chamber from the spike timings and the median beat's QRS and P onsets (all s relative to R):
    'ventricular' (a spike within 50 ms before QRS onset), 'atrial' (a spike before the P wave), 'dual-chamber'
    (both), or 'undetermined'."""
    ventricular = any(np.isfinite(qrs_on_s) and t >= qrs_on_s - 0.05 for t in timings)
    atrial = any(np.isfinite(p_on_s) and t <= p_on_s + 0.02 for t in timings)
    if ventricular and atrial:
        return "dual-chamber"
    return "ventricular" if ventricular else ("atrial" if atrial else "undetermined")


SPIKE_BLANK_S = 0.01
"""A pacing spike and its recharge artefact are blanked over this long from the spike (as pacemaker-aware
electrocardiographs do); the paced QRS starts no earlier than its end."""


def blank_spikes(raw: np.ndarray, fs: float, spikes: np.ndarray) -> np.ndarray:
    """A copy of the RAW strip with each pacing spike (its sample to ``SPIKE_BLANK_S`` after) replaced by the
    straight line between the samples around it, so that filtering does not smear it into the QRS and the QRS
    onset is the heart's, not the stimulus's."""
    x = np.array(raw, dtype=np.float64, copy=True)
    n, k = x.shape[1], max(1, int(round(SPIKE_BLANK_S * fs)))
    for s in np.asarray(spikes, dtype=np.int64):
        a, b = max(0, s - 1), min(n - 1, s + k)
        if b - a > 1:
            w = np.linspace(0.0, 1.0, b - a + 1)[1:-1]
            x[:, a + 1:b] = x[:, a:a + 1] * (1.0 - w) + x[:, b:b + 1] * w
    return x


def einthoven_note(raw: np.ndarray, names: Sequence[str], cfg: QualityConfig | None = None) -> str:
    """'' when the stored leads I, II, III obey III = II - I (or are not all stored), else a warning."""
    cfg = cfg or QualityConfig()
    if not all(n in names for n in ("I", "II", "III")):
        return ""
    x = np.asarray(raw, dtype=np.float64)
    lead_i, lead_ii, lead_iii = (x[list(names).index(n)] for n in ("I", "II", "III"))
    lead_i, lead_ii, lead_iii = (v - np.median(v) for v in (lead_i, lead_ii, lead_iii))
    resid = float(np.sqrt(np.mean((lead_iii - (lead_ii - lead_i)) ** 2)))
    scale = float(np.sqrt(np.mean(lead_iii ** 2)))
    if resid <= cfg.einthoven_tolerance * scale + 0.04:
        return ""
    return (f"Einthoven's law fails: III differs from II - I by {resid:.3f} mV RMS ({scale:.3f} mV RMS in III); "
            "check the per-lead gains")


def plausibility(measurements: dict[str, float], n_beats: int, span_s: float,
                 cfg: QualityConfig | None = None) -> str:
    """'' when the global measurements are physiologically plausible, else the first failure."""
    cfg = cfg or QualityConfig()
    qrs = measurements.get("qrs_duration_ms", float("nan"))
    hr = measurements.get("heart_rate_bpm", float("nan"))
    if not np.isfinite(qrs) or not cfg.qrs_min_ms <= qrs <= cfg.qrs_max_ms:
        return f"implausible QRS duration ({qrs:.0f} ms; expected {cfg.qrs_min_ms:g}-{cfg.qrs_max_ms:g} ms)"
    if not np.isfinite(hr) or not cfg.hr_min_bpm <= hr <= cfg.hr_max_bpm:
        return f"implausible heart rate ({hr:.0f} bpm; expected {cfg.hr_min_bpm:g}-{cfg.hr_max_bpm:g} bpm)"
    if n_beats >= 3 and span_s > 0:
        hr_count = 60.0 * (n_beats - 1) / span_s
        if abs(hr_count - hr) > cfg.rr_consistency * hr:
            return f"inconsistent RR intervals ({hr_count:.0f} bpm by beat count, {hr:.0f} bpm by median RR)"
    return ""


def record_verdict(bad_leads: dict[str, str], required: Sequence[str] = MODEL_LEADS) -> tuple[bool, str, list[str]]:
    """(ok, reason, notes): the record fails on a bad lead it cannot do without (``required``, the model inputs);
    other bad leads become notes."""
    failing = [reason for lead, reason in bad_leads.items() if lead in required]
    notes = [f"{reason} (its measurements are left out)" for lead, reason in bad_leads.items() if lead not in required]
    if failing:
        return False, failing[0], notes
    return True, "", notes
