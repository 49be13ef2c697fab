"""One synthetic 10 s, 12-lead, 500 Hz resting ECG: rhythm, beats, noise, bad recordings, median beat.

The rhythm is sinus with heart-rate variability (respiratory sinus arrhythmia plus random RR jitter) and,
in some participants, premature ventricular beats with a compensatory pause. The noise model is additive
on the eight independent leads (baseline wander, 50 Hz mains hum, muscle noise), so the derived limb
leads keep Einthoven's and Goldberger's relations as on a real electrocardiograph. A small share of
records is deliberately bad (a flat lead, a saturated lead or heavy noise), as in any ECG archive.
The device-style median beat (600 samples, QRS onset at sample 216, as in UK Biobank's CardioSoft files)
is the noise-free normal beat at the participant's mean RR interval. Another device can band-limit the
signal and median (zero-phase Butterworth), and chest electrodes can sit systematically off their places.
Every beat's true fiducials (P, QRS and T on/offsets and peaks) are the clinical ones (:func:`beat_fiducials`):
a wave starts where the second-earliest of the 12 leads departs from its baseline by 10 uV and ends where the
second-latest returns, as IEC 60601-2-25 defines global boundaries and as the real references (cardiologists'
per-lead annotations, the devices' global values) mark them; the peaks are the wave's dipole maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiecg.synth.heart import (
    DOWER,
    QRS,
    HeartParams,
    Morphology,
    P,
    T,
    derive_twelve_leads,
    pvc_morphology,
    render_dipole,
    sample_morphology,
)

FS = 500.0
N_SAMPLES = 5000
MEDIAN_SAMPLES = 600
MEDIAN_QRS_ONSET = 216
BAD_REASONS: tuple[str, ...] = ("flat_lead", "saturated_lead", "heavy_noise")
LEAD_INDEX = {name: i for i, name in enumerate(
    ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"))}


@dataclass(frozen=True)
class RecordParams:
    """Rhythm and noise settings of the recording (``noise`` and ``gain`` come from a DomainShift).

    Attributes:
        gain: device amplitude calibration factor (1 = UK Biobank-like).
        noise: multiplier of every noise amplitude.
        bad_share: probability that a record is bad (flat lead, saturated lead or heavy noise).
        pvc_share: baseline probability that a participant has premature ventricular beats in the strip.
        mains_hz: mains frequency of the hum.
        lowpass_hz, highpass_hz: the device's band limits (2nd-order zero-phase Butterworth on the stored
            signal and median beat); None = the UK-Biobank-like 0.05-150 Hz device, left unfiltered.
        electrode_shift: systematic lateral displacement of the chest electrodes, in lead spacings (each
            precordial lead becomes (1 - f) of itself plus f of its lateral neighbour; f < 0 moves medially).
        electrode_shift_sd: SD of each record's own lateral displacement around ``electrode_shift`` (routine
            care: the electrodes sit elsewhere on every recording; Wenger & Kligfield 1996).
        electrode_sd: multiplier of the random electrode placement error: the lead-vector tilt of every lead
            and the per-lead log gain of the chest leads.
    """

    gain: float = 1.0
    noise: float = 1.0
    bad_share: float = 0.025
    pvc_share: float = 0.05
    mains_hz: float = 50.0
    lowpass_hz: float | None = None
    highpass_hz: float | None = None
    electrode_shift: float = 0.0
    electrode_shift_sd: float = 0.0
    electrode_sd: float = 1.0


@dataclass
class SynthRecord:
    """A generated record: clean and noisy 12-lead signals (mV), the median beat and the truth."""

    clean: np.ndarray
    signal: np.ndarray
    median: np.ndarray
    r_peaks: np.ndarray
    is_ectopic: np.ndarray
    truth: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, float] = field(default_factory=dict)
    lead_measurements: dict[str, dict[str, float]] = field(default_factory=dict)
    fiducials: dict[str, np.ndarray] = field(default_factory=dict)


ELECTRODE_GAIN_SD = np.array([0.04, 0.04, 0.12, 0.12, 0.12, 0.10, 0.10, 0.10])
"""SD of the per-lead log gain of electrode placement and torso (I, II, V1..V6) in a research protocol."""


def electrode_gain_sd(electrode_sd: float = 1.0) -> np.ndarray:
    """Per-lead log-gain SD (I, II, V1..V6) when the chest electrodes' placement error is ``electrode_sd`` times
    a research protocol's; the limb electrodes (wrists and ankles) are hard to misplace and keep theirs."""
    return ELECTRODE_GAIN_SD * np.r_[1.0, 1.0, np.full(6, float(electrode_sd))]


def electrode_ratio_sd(electrode_sd: float = 1.0) -> float:
    """SD of mean(log chest-lead gain) - mean(log limb-lead gain): the electrode part of the expressed
    ``precordial_log_ratio`` (the oracle's noise on the habitus pattern)."""
    sd = electrode_gain_sd(electrode_sd)
    return float(np.sqrt((sd[2:] ** 2).sum() / 36.0 + (sd[:2] ** 2).sum() / 4.0))


def _displace_chest(base: np.ndarray, f: float) -> np.ndarray:
    """Chest-lead rows of the lead matrix with every chest electrode moved ``f`` lead spacings laterally
    (towards V6; f < 0 medially), by linear interpolation between neighbouring lead vectors (extrapolated one
    spacing beyond V1 and V6)."""
    chest = base[2:8]
    if f >= 0:
        neighbour = np.vstack([chest[1:], 2.0 * chest[-1] - chest[-2]])
    else:
        neighbour = np.vstack([2.0 * chest[0] - chest[1], chest[:-1]])
    out = base.copy()
    out[2:8] = (1.0 - abs(f)) * chest + abs(f) * neighbour
    return out


def _lead_matrix(rng: np.random.Generator, rp: RecordParams | None = None) -> tuple[np.ndarray, float]:
    """Dower matrix perturbed by this participant's electrode placement and torso (per-lead gain), and the
    chest-minus-limb mean log gain of that perturbation.

    Placement (Wenger & Kligfield 1996, J Electrocardiol 29:179: routine chest electrodes lie 2.9 cm from their
    anatomical sites on average, V1-V2 high and wide, V4-V6 low and wide) acts on the chest leads as a lateral
    move (``electrode_shift`` plus the record's own ``electrode_shift_sd`` draw) and as per-lead gain and tilt;
    beyond 2 cm it changes V1-V4 morphology and scales V5-V6 (Kania et al. 2014, Med Biol Eng Comput 52:109).
    """
    rp = rp or RecordParams()
    log_gains = rng.normal(0.0, electrode_gain_sd(rp.electrode_sd))
    tilt = rng.normal(0.0, 0.08, size=(8, 3)) * np.abs(DOWER).mean(axis=1, keepdims=True) * rp.electrode_sd
    tilt[:2] *= 0.3
    base = np.array(DOWER)
    shift = rp.electrode_shift + (rp.electrode_shift_sd * rng.normal() if rp.electrode_shift_sd else 0.0)
    if shift:
        base = _displace_chest(base, float(np.clip(shift, -1.0, 1.0)))
    ratio = float(log_gains[2:].mean() - log_gains[:2].mean())
    return (base + tilt) * np.exp(log_gains)[:, None], ratio


def _band_limit(x: np.ndarray, fs: float, rp: RecordParams) -> np.ndarray:
    """The device's band limits on the last axis (zero-phase 2nd-order Butterworth), if it has any."""
    if not (rp.lowpass_hz or rp.highpass_hz):
        return x
    from scipy.signal import butter, sosfiltfilt

    if rp.lowpass_hz:
        x = sosfiltfilt(butter(2, rp.lowpass_hz, "lowpass", fs=fs, output="sos"), x, axis=-1)
    if rp.highpass_hz:
        x = sosfiltfilt(butter(2, rp.highpass_hz, "highpass", fs=fs, output="sos"), x, axis=-1)
    return x


def _beat_schedule(rng: np.random.Generator, hr_bpm: float, age: float, pvc_p: float,
                   duration: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QRS onsets (s), preceding RR (s) and ectopic flags for beats covering [-1.5, duration + 0.5] s."""
    rr_mean = 60.0 / hr_bpm
    resp_f = rng.uniform(0.18, 0.33)
    resp_phase = rng.uniform(0.0, 2.0 * np.pi)
    rsa = 0.045 * np.exp(-0.025 * (age - 45.0)) * rng.uniform(0.5, 1.5)
    jitter = rng.uniform(0.01, 0.03)
    n = int(np.ceil((duration + 3.0) / (0.7 * rr_mean))) + 3
    noise = rng.normal(0.0, jitter, n)
    t = -1.5 + rng.uniform(0.0, rr_mean)
    onsets, rrs = [], []
    for k in range(n):
        rr = rr_mean * (1.0 + rsa * np.sin(2 * np.pi * resp_f * t + resp_phase) + noise[k])
        rr = max(rr, 0.3)
        onsets.append(t)
        rrs.append(rr)
        t += rr
        if t > duration + 0.5:
            break
    onsets_a, rr_a = np.array(onsets), np.array(rrs)
    ectopic = np.zeros(onsets_a.size, dtype=bool)
    n_pvc = int(rng.poisson(1.5)) + 1 if rng.random() < pvc_p else 0
    inside = np.flatnonzero((onsets_a > 0.3) & (onsets_a < duration - 0.6))
    coupling = rng.uniform(0.55, 0.72, max(n_pvc, 1))
    if n_pvc and inside.size > 2:
        chosen = np.sort(rng.choice(inside[1:], size=min(n_pvc, inside.size - 1), replace=False))
        for j, k in enumerate(chosen):
            if ectopic[k - 1]:
                continue
            # The PVC comes early; the sinus beat it replaces is concealed, so the next one is on time
            # (a full compensatory pause).
            onsets_a[k] = onsets_a[k - 1] + coupling[j] * rr_a[k - 1]
            rr_a[k] = coupling[j] * rr_a[k - 1]
            ectopic[k] = True
    return onsets_a, rr_a, ectopic


VISIBLE_MV = 0.01
"""A lead shows a wave where it lies at least this far (10 uV, 0.1 mm at 10 mm/mV) from its baseline."""
FIDUCIAL_FRACTION = 0.05
"""Without a lead matrix (the dipole alone), a wave's onset/offset is where its dipole magnitude first rises above /
last falls below this fraction of its peak."""
FIDUCIAL_COLUMNS: tuple[str, ...] = ("r_peak_s", "p_on_s", "p_peak_s", "p_off_s", "qrs_on_s", "qrs_off_s",
                                     "t_peak_s", "t_off_s")
"""Per-beat true fiducials in the beats truth table, in seconds from the start of the stored recording."""


def _wave_bounds(morph: Morphology, rr: float, kind: int, lead_matrix: np.ndarray | None = None,
                 step: float = 0.0005) -> tuple[float, float, float]:
    """(onset, peak, offset) in s after QRS onset of one wave; NaN when the wave is absent.

    The peak is the maximum of the wave's dipole magnitude. With the record's ``lead_matrix`` the boundaries are
    the clinical ones (IEC 60601-2-25, as cardiologists and devices mark them): the second-earliest time at which
    a lead of the 12 departs from its baseline by :data:`VISIBLE_MV` and the second-latest at which one returns
    (robust to one lead, as the real references are built); without it, :data:`FIDUCIAL_FRACTION` of the dipole
    magnitude.
    """
    c, w = morph.timed(np.array([rr]))
    sel = (morph.kinds == kind) & (np.abs(morph.vectors).sum(axis=1) > 0)
    if not sel.any():
        return (float("nan"),) * 3
    c, w, v = c[0][sel], w[0][sel], morph.vectors[sel]
    t = np.arange((c - 5.0 * w).min(), (c + 5.0 * w).max() + step, step)
    dipole = v.T @ np.exp(-0.5 * ((t[None, :] - c[:, None]) / w[:, None]) ** 2)
    mag = np.sqrt((dipole**2).sum(axis=0))
    peak = int(np.argmax(mag))
    above = np.flatnonzero(mag >= FIDUCIAL_FRACTION * mag[peak])
    on, off = float(t[above[0]]), float(t[above[-1]])
    if lead_matrix is not None:
        visible = np.abs(derive_twelve_leads(lead_matrix @ dipole)) >= VISIBLE_MV
        shown = np.flatnonzero(visible.any(axis=1))
        if shown.size >= 2:
            first = np.sort(np.argmax(visible[shown], axis=1))
            last = np.sort(t.size - 1 - np.argmax(visible[shown][:, ::-1], axis=1))
            on, off = float(t[first[1]]), float(t[last[-2]])
    return on, float(t[peak]), off


def beat_fiducials(onsets: np.ndarray, morphs: list[Morphology], rr: np.ndarray, duration: float,
                   lead_matrix: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """True fiducials of every beat (s from the recording start; NaN if absent or outside the recording).

    R peak: the maximum of the QRS dipole magnitude; on/offsets: the clinical boundaries over the 12 leads of
    ``lead_matrix`` (see ``_wave_bounds``); the T wave is the repolarisation (T) lobes without the ST lobe; a
    premature ventricular beat has no P wave.
    """
    # P and QRS do not stretch with RR; the T lobes stretch by cbrt(RR) in centre and width alike, so the T
    # fiducials are those at RR = 1 s scaled by cbrt(RR). Bounds are computed once per distinct morphology.
    cache: dict[int, tuple[tuple[float, float, float], ...]] = {}
    rows = []
    for morph, rr_i in zip(morphs, rr):
        if id(morph) not in cache:
            cache[id(morph)] = tuple(_wave_bounds(morph, 1.0, kind, lead_matrix) for kind in (P, QRS, T))
        (p_on, p_peak, p_off), (q_on, r_peak, q_off), (_, t_peak, t_off) = cache[id(morph)]
        k = float(np.cbrt(rr_i))
        rows.append([r_peak, p_on, p_peak, p_off, q_on, q_off, k * t_peak, k * t_off])
    out = np.asarray(rows, dtype=np.float64).reshape(-1, len(FIDUCIAL_COLUMNS)) + np.asarray(onsets)[:, None]
    out[(out < 0.0) | (out >= duration)] = np.nan
    return dict(zip(FIDUCIAL_COLUMNS, out.T))


def _amplitudes(median: np.ndarray, morph: Morphology, fs: float) -> dict[str, dict[str, float]]:
    """Per-lead P, Q, R, S, T amplitudes (uV) of a median beat, as a device's measurement table."""
    on = MEDIAN_QRS_ONSET
    end = on + int(round(morph.qrs_s * fs)) + 1
    qrs = median[:, on:end] * 1000.0
    p_win = median[:, on - int(round(morph.pr_s * fs)):on - int(round((morph.pr_s - morph.p_s) * fs))] * 1000.0
    t_win = median[:, end:on + int(round(morph.qt_s * fs))] * 1000.0
    r = np.clip(qrs.max(axis=1), 0.0, None)
    s = np.clip(-qrs.min(axis=1), 0.0, None)
    first_peak = np.argmax(np.abs(qrs) > 0.25 * np.abs(qrs).max(axis=1, keepdims=True), axis=1)
    q = np.where(qrs[np.arange(qrs.shape[0]), first_peak] < 0,
                 np.clip(-qrs[:, : max(int(0.4 * qrs.shape[1]), 1)].min(axis=1), 0.0, None), 0.0)
    p = p_win[np.arange(p_win.shape[0]), np.abs(p_win).argmax(axis=1)]
    tt = t_win[np.arange(t_win.shape[0]), np.abs(t_win).argmax(axis=1)]
    names = list(LEAD_INDEX)
    return {
        "PAmplitude": dict(zip(names, p.tolist())),
        "QAmplitude": dict(zip(names, q.tolist())),
        "RAmplitude": dict(zip(names, r.tolist())),
        "SAmplitude": dict(zip(names, s.tolist())),
        "TAmplitude": dict(zip(names, tt.tolist())),
    }


def _axis(median: np.ndarray, lo: int, hi: int) -> float:
    """Frontal-plane axis (degrees) from the net areas of leads I and aVF in samples [lo, hi)."""
    lead_i = median[LEAD_INDEX["I"], lo:hi].sum()
    lead_avf = median[LEAD_INDEX["aVF"], lo:hi].sum()
    return float(np.rad2deg(np.arctan2(2.0 / np.sqrt(3.0) * lead_avf, lead_i)))


def synthesise_record(participant: dict[str, Any], rng: np.random.Generator, params: RecordParams | None = None,
                      heart: HeartParams | None = None, duration: float = 10.0, fs: float = FS) -> SynthRecord:
    """Generate one participant's ECG and its truth.

    Args:
        participant: needs ``sex`` (1/0), ``age``, ``bmi`` and the latent ``_mass_z`` and ``_heart_rate``.
        rng: this participant's generator (the same generator always gives the same record).
        params: recording and noise settings; heart: LV-mass effect strengths.
    """
    rp = params or RecordParams()
    sex, age, bmi = int(participant["sex"]), float(participant["age"]), float(participant["bmi"])
    mass_z = float(participant["_mass_z"])
    bp_load = (float(participant.get("_sbp_untreated", 134.0)) - 134.0) / 16.0
    morph, latent = sample_morphology(rng, mass_z=mass_z, sex=sex, age=age, bmi=bmi, params=heart,
                                      bp_load=bp_load, volume_z=float(participant.get("_vol_z", 0.0)))
    lead_matrix, electrode_ratio = _lead_matrix(rng, rp)
    lead_matrix[2:] *= latent.pop("precordial_factor")
    lead_matrix = lead_matrix * rp.gain
    latent["precordial_log_ratio"] += electrode_ratio  # the habitus part plus the electrodes' part
    pvc_p = rp.pvc_share * float(np.exp(0.04 * (age - 63.0)))
    onsets, rr, ectopic = _beat_schedule(rng, float(participant["_heart_rate"]), age, pvc_p, duration)
    pvc = pvc_morphology(rng, morph)
    resp = 1.0 + 0.04 * np.sin(2 * np.pi * rng.uniform(0.18, 0.33) * onsets + rng.uniform(0, 2 * np.pi))

    n = int(round(duration * fs))
    t = np.arange(n) / fs
    morphs = [pvc if e else morph for e in ectopic]
    dipole = render_dipole(t, onsets, morphs, rr, scale=resp)
    eight_clean = lead_matrix @ dipole
    clean = derive_twelve_leads(eight_clean)

    # Noise on the eight recorded leads.
    g = rp.noise
    resp_f, phase = rng.uniform(0.15, 0.35), rng.uniform(0, 2 * np.pi)
    slow_f, slow_phase = rng.uniform(0.03, 0.12, 8), rng.uniform(0, 2 * np.pi, 8)
    wander = (rng.uniform(0.01, 0.07, 8)[:, None] * np.sin(2 * np.pi * resp_f * t + phase)[None, :]
              + rng.uniform(0.0, 0.12, 8)[:, None] * np.sin(2 * np.pi * slow_f[:, None] * t + slow_phase[:, None]))
    hum = rng.uniform(0.0, 0.012, 8)[:, None] * np.sin(2 * np.pi * rp.mains_hz * t + rng.uniform(0, 2 * np.pi))[None]
    emg = rng.uniform(0.004, 0.02) * rng.uniform(0.5, 1.5, 8)[:, None] * rng.normal(size=(8, n))
    eight = eight_clean + g * (wander + hum + emg)

    bad_reason, bad_lead = "", ""
    is_bad = rng.random() < rp.bad_share
    reason_draw, lead_draw, level_draw = int(rng.integers(3)), int(rng.integers(2, 8)), rng.uniform(6.0, 9.0)
    if is_bad:
        bad_reason = BAD_REASONS[reason_draw]
        if bad_reason == "flat_lead":
            eight[lead_draw] = 0.0
            bad_lead = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")[lead_draw]
        elif bad_reason == "saturated_lead":
            drift = level_draw * np.clip((t - rng.uniform(0.5, 4.0)) / 1.5, 0.0, 1.0)
            eight[lead_draw] = np.clip(eight[lead_draw] + drift, -5.0, 5.0)
            bad_lead = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")[lead_draw]
        else:
            heavy = rng.normal(size=(8, n)) * rng.uniform(0.15, 0.4)
            eight = eight + heavy + 0.6 * np.sin(2 * np.pi * 0.3 * t + phase)[None, :]
    signal = derive_twelve_leads(_band_limit(eight, fs, rp))

    # Median beat: the noise-free normal beat at the mean RR interval.
    mean_rr = float(np.mean(rr[~ectopic])) if (~ectopic).any() else float(np.mean(rr))
    tm = np.arange(MEDIAN_SAMPLES) / fs
    onset_m = MEDIAN_QRS_ONSET / fs
    median = derive_twelve_leads(_band_limit(
        lead_matrix @ render_dipole(tm, np.array([onset_m]), [morph], np.array([mean_rr])), fs, rp))
    if bad_reason == "flat_lead":
        median[6 + lead_draw - 2] = 0.0

    fiducials = beat_fiducials(onsets, morphs, rr, n / fs, lead_matrix)
    keep = np.isfinite(fiducials["r_peak_s"]) & (np.rint(fiducials["r_peak_s"] * fs) < n)
    fiducials = {k: v[keep] for k, v in fiducials.items()}
    r_peaks, is_ectopic = np.rint(fiducials["r_peak_s"] * fs).astype(np.int64), ectopic[keep]
    vent_rate = float(60.0 * fs * (r_peaks.size - 1) / (r_peaks[-1] - r_peaks[0])) if r_peaks.size > 1 else float("nan")

    amps = _amplitudes(median, morph, fs)
    qt = float(morph.qt_at(mean_rr))
    on_ms = MEDIAN_QRS_ONSET / fs * 1000.0
    qrs_end = MEDIAN_QRS_ONSET + int(round(morph.qrs_s * fs))
    sv1 = amps["SAmplitude"]["V1"] / 1000.0
    rv5, rv6 = amps["RAmplitude"]["V5"] / 1000.0, amps["RAmplitude"]["V6"] / 1000.0
    ravl, sv3 = amps["RAmplitude"]["aVL"] / 1000.0, amps["SAmplitude"]["V3"] / 1000.0
    sv4 = amps["SAmplitude"]["V4"] / 1000.0
    deepest_s = max(amps["SAmplitude"].values()) / 1000.0
    measurements = {
        "VentricularRate": round(vent_rate) if np.isfinite(vent_rate) else float("nan"),
        "PQInterval": morph.pr_s * 1000.0, "PDuration": morph.p_s * 1000.0, "QRSDuration": morph.qrs_s * 1000.0,
        "QTInterval": qt * 1000.0, "QTCInterval": qt / np.sqrt(mean_rr) * 1000.0,
        "RRInterval": mean_rr * 1000.0, "PPInterval": mean_rr * 1000.0,
        "SokolovLVHIndex": sv1 + max(rv5, rv6),
        "PAxis": _axis(median, MEDIAN_QRS_ONSET - int(morph.pr_s * fs), MEDIAN_QRS_ONSET),
        "RAxis": _axis(median, MEDIAN_QRS_ONSET, qrs_end),
        "TAxis": _axis(median, qrs_end, MEDIAN_QRS_ONSET + int(qt * fs)),
        "QRSNum": int(r_peaks.size),
        "POnset": on_ms - morph.pr_s * 1000.0, "POffset": on_ms - (morph.pr_s - morph.p_s) * 1000.0,
        "QOnset": on_ms, "QOffset": on_ms + morph.qrs_s * 1000.0, "TOffset": on_ms + qt * 1000.0,
    }
    truth = {
        **latent, "heart_rate": vent_rate, "mean_rr_ms": mean_rr * 1000.0, "qt_ms": qt * 1000.0,
        "is_bad_recording": int(is_bad), "bad_reason": bad_reason, "bad_lead": bad_lead,
        "n_beats": int(r_peaks.size), "n_ectopic": int(is_ectopic.sum()),
        "sv1_mv": sv1, "rv5_mv": rv5, "rv6_mv": rv6, "ravl_mv": ravl, "sv3_mv": sv3,
        "sokolow_mv": sv1 + max(rv5, rv6), "cornell_mv": ravl + sv3,
        "peguero_mv": deepest_s + sv4, "r_axis_deg": measurements["RAxis"],
    }
    return SynthRecord(clean=clean, signal=signal, median=median, r_peaks=r_peaks, is_ectopic=is_ectopic,
                       truth=truth, measurements=measurements, lead_measurements=amps, fiducials=fiducials)
