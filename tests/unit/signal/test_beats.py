"""R-peak detection, beat QC, record QC and the median beat, on synthetic and real ECGs."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest

from aiecg.ecg import STANDARD_LEADS
from aiecg.signal.beats import BeatConfig, assess_quality, extract_beats
from aiecg.signal.filters import FilterConfig, preprocess
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"real ECG data folder {DATA} is absent")
FS = 500.0

# Per-lead wave amplitudes (mV) for P, Q, R, S, T: a plausible normal 12-lead pattern.
_AMPS = np.array([
    [0.08, -0.05, 0.7, -0.05, 0.25],   # I
    [0.12, -0.10, 1.0, -0.10, 0.30],   # II
    [0.05, -0.08, 0.4, -0.10, 0.08],   # III
    [-0.10, 0.0, 0.15, -0.8, -0.25],   # aVR
    [0.03, -0.03, 0.3, -0.15, 0.10],   # aVL
    [0.09, -0.09, 0.7, -0.10, 0.20],   # aVF
    [0.05, 0.0, 0.3, -0.9, -0.05],     # V1
    [0.07, 0.0, 0.6, -1.1, 0.40],      # V2
    [0.08, -0.02, 1.0, -0.7, 0.50],    # V3
    [0.08, -0.05, 1.6, -0.3, 0.45],    # V4
    [0.08, -0.10, 1.5, -0.1, 0.35],    # V5
    [0.07, -0.10, 1.2, 0.0, 0.30],     # V6
])
# Wave centres (s, relative to R) and widths (s).
_CENTRES = np.array([-0.16, -0.025, 0.0, 0.028, 0.26])
_WIDTHS = np.array([0.022, 0.008, 0.010, 0.009, 0.05])


def synth_ecg(
    seed: int,
    hr: float = 70.0,
    duration: float = 10.0,
    noise_mv: float = 0.01,
    wander_mv: float = 0.2,
    ectopic_beat: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum-of-Gaussians 12-lead ECG at 500 Hz: returns (signal [12, n] mV, true R samples, ectopic flags).

    RR intervals vary by +-4 %; ``ectopic_beat`` (index) is replaced by a premature (60 % of the RR), wide,
    P-less beat of inverted polarity, as a premature ventricular complex.
    """
    rng = np.random.default_rng(seed)
    n = int(duration * FS)
    t = np.arange(n) / FS
    rr = 60.0 / hr
    times, flags = [], []
    now = 0.35 + rng.uniform(0, 0.3)
    k = 0
    while now < duration - 0.05:
        if ectopic_beat is not None and k == ectopic_beat:
            now += -0.4 * rr  # this beat comes at 60 % of the cycle
            times.append(now)
            flags.append(True)
            now += 1.4 * rr  # compensatory pause
        else:
            times.append(now)
            flags.append(False)
            now += rr * (1 + rng.uniform(-0.04, 0.04))
        k += 1
    x = np.zeros((12, n))
    for r, ectopic in zip(times, flags):
        if ectopic:
            qrs = np.exp(-0.5 * ((t - r) / 0.035) ** 2)
            twave = np.exp(-0.5 * ((t - r - 0.3) / 0.07) ** 2)
            x += -1.2 * np.sign(_AMPS[:, 2:3] + _AMPS[:, 3:4]) * qrs + 0.4 * twave * -np.sign(_AMPS[:, 4:5])
            continue
        for w in range(5):
            x += _AMPS[:, w : w + 1] * np.exp(-0.5 * ((t - r - _CENTRES[w]) / _WIDTHS[w]) ** 2)
    x += wander_mv * np.sin(2 * np.pi * 0.2 * t + rng.uniform(0, 2 * np.pi))[None]
    x += rng.normal(0, noise_mv, x.shape)
    return x.astype(np.float32), np.round(np.asarray(times) * FS).astype(np.int64), np.asarray(flags)


def _match(detected: np.ndarray, truth: np.ndarray, tol: int) -> tuple[int, int, int, np.ndarray]:
    tp, errors = 0, []
    used = np.zeros(detected.size, bool)
    for r in truth:
        d = np.abs(detected - r)
        d[used] = tol + 1
        j = int(np.argmin(d)) if d.size else -1
        if j >= 0 and d[j] <= tol:
            used[j] = True
            tp += 1
            errors.append(detected[j] - r)
    return tp, truth.size - tp, int((~used).sum()), np.asarray(errors)


def test_r_peak_sensitivity_and_ppv_on_synthetic_records() -> None:
    tp = fn = fp = 0
    errors = []
    for seed, hr in enumerate([42, 55, 63, 70, 78, 88, 97, 110, 125, 140, 155]):
        raw, truth, _ = synth_ecg(seed, hr=hr, noise_mv=0.02, wander_mv=0.3)
        beats = extract_beats(preprocess(raw, FS), FS, STANDARD_LEADS)
        a, b, c, e = _match(beats.r_peaks, truth, tol=int(0.05 * FS))
        tp, fn, fp = tp + a, fn + b, fp + c
        errors.append(e)
        assert beats.qc_ok, (hr, beats.qc_reason)
        assert beats.heart_rate == pytest.approx(hr, rel=0.05)
    sensitivity, ppv = tp / (tp + fn), tp / (tp + fp)
    assert tp > 150
    assert sensitivity >= 0.99
    assert ppv >= 0.99
    # alignment: the fiducial sits on the R peak (the dominant deflection), within 2 ms
    assert np.median(np.abs(np.concatenate(errors))) <= 1


def test_ectopic_beat_is_excluded_and_median_matches_the_normal_beat() -> None:
    raw, truth, ectopic = synth_ecg(3, hr=60, noise_mv=0.01, ectopic_beat=4)
    beats = extract_beats(preprocess(raw, FS), FS, STANDARD_LEADS)
    assert beats.qc_ok
    # a wide ectopic complex has no sharp R: its fiducial may sit up to 100 ms from the synthetic centre
    tp, fn, fp, _ = _match(beats.r_peaks, truth, tol=int(0.1 * FS))
    assert fn == 0 and fp == 0
    near = np.abs(beats.r_peaks[:, None] - truth[ectopic][None, :]).min(axis=1) <= int(0.1 * FS)
    assert near.sum() == 1
    assert not beats.clean[near].any()
    # every other beat that lies fully inside the strip is kept (including the one after the pause)
    cfg = BeatConfig()
    inside = (beats.r_peaks >= cfg.r_offset) & (beats.r_peaks + cfg.window - cfg.r_offset <= raw.shape[1])
    assert beats.clean[inside & ~near].all()
    assert len(beats.beats) == int((inside & ~near).sum())
    # the median equals a clean synthetic beat: R in V5 of 1.5 mV (the filter keeps it within 5 %)
    v5 = STANDARD_LEADS.index("V5")
    assert beats.median.shape == (12, 400)
    r_amplitude = beats.median[v5, 150] - beats.median[v5, 150 - 30]  # against the PR segment, 60 ms before R
    assert r_amplitude == pytest.approx(1.5, rel=0.03)


def test_beats_outside_the_strip_are_not_clean() -> None:
    raw, truth, _ = synth_ecg(5, hr=75)
    beats = extract_beats(preprocess(raw, FS), FS, STANDARD_LEADS)
    first_inside = beats.r_peaks >= 150
    assert not beats.clean[~first_inside].any()
    assert not beats.clean[beats.r_peaks + 250 > raw.shape[1]].any()


def test_clean_record_passes_quality_control() -> None:
    raw, _, _ = synth_ecg(7, hr=66)
    x = preprocess(raw, FS)
    assert assess_quality(x, FS, STANDARD_LEADS) == (True, "")
    beats = extract_beats(x, FS, STANDARD_LEADS)
    assert beats.qc_ok and beats.qc_reason == ""


def test_flat_lead_is_flagged() -> None:
    raw, _, _ = synth_ecg(8)
    raw[STANDARD_LEADS.index("V3")] = np.random.default_rng(0).normal(0, 0.002, raw.shape[1])
    beats = extract_beats(preprocess(raw, FS), FS, STANDARD_LEADS)
    assert not beats.qc_ok
    assert beats.qc_reason == "flat lead V3"


def test_noise_free_record_is_not_called_saturated() -> None:
    raw, _, _ = synth_ecg(14, hr=40, noise_mv=0.0, wander_mv=0.0)
    assert assess_quality(preprocess(raw, FS), FS, STANDARD_LEADS) == (True, "")


def test_clipped_lead_is_flagged_on_the_raw_strip() -> None:
    # Changed with issue 11: clipping is judged on the raw strip only (filtering turns a plateau into a smooth
    # curve, and the old filtered-strip "no activity" rule flagged quiet real leads as saturated).
    from aiecg.signal.beats import detect_clipping

    raw, _, _ = synth_ecg(9, wander_mv=0.0)
    t = np.arange(raw.shape[1]) / FS
    ii = STANDARD_LEADS.index("II")
    # a drifting electrode drives lead II into the amplifier's range of +-2 mV for whole seconds
    raw[ii] = np.clip(raw[ii] + 3.0 * np.sin(2 * np.pi * 0.15 * t), -2.0, 2.0)
    assert detect_clipping(raw, FS, STANDARD_LEADS) == (False, "saturated lead II")
    assert assess_quality(preprocess(raw, FS), FS, STANDARD_LEADS) == (True, "")


def test_heavy_noise_is_flagged() -> None:
    raw, _, _ = synth_ecg(10)
    raw = raw + np.random.default_rng(1).normal(0, 0.15, raw.shape).astype(np.float32)
    beats = extract_beats(preprocess(raw, FS, FilterConfig(lowpass_hz=None)), FS, STANDARD_LEADS)
    assert not beats.qc_ok
    assert beats.qc_reason.startswith("excessive noise in lead")


def test_too_few_clean_beats_is_flagged() -> None:
    raw, _, _ = synth_ecg(11, hr=40, duration=3.0)
    beats = extract_beats(preprocess(raw, FS), FS, STANDARD_LEADS)
    assert not beats.qc_ok
    assert beats.qc_reason.startswith("too few clean beats (")
    assert beats.median.shape == (12, 400)


def test_wrong_sampling_rate_is_refused() -> None:
    raw, _, _ = synth_ecg(12)
    with pytest.raises(ValueError, match="resample first"):
        extract_beats(raw, 250.0, STANDARD_LEADS)


def test_same_input_same_output() -> None:
    x = preprocess(synth_ecg(13)[0], FS)
    a, b = extract_beats(x, FS, STANDARD_LEADS), extract_beats(x, FS, STANDARD_LEADS)
    np.testing.assert_array_equal(a.median, b.median)
    np.testing.assert_array_equal(a.r_peaks, b.r_peaks)


@needs_data
@pytest.mark.parametrize("name", [
    "cinc2021/E07500", "cinc2021/E07504", "cinc2021/HR06000", "cinc2021/HR06003",
    "ptbxl/records500/00841_hr", "ptbxl/records500/02132_hr", "ptbxl/records500/03403_hr",
    "ptbxl/records500/21544_hr",
])
def test_real_records_extract(name: str) -> None:
    from aiecg.io import read_ecg

    ecg = read_ecg(DATA / f"{name}.hea")
    x = preprocess(ecg.signal, ecg.fs)
    beats = extract_beats(x, FS, ecg.leads)
    assert beats.qc_ok, beats.qc_reason
    assert beats.median.shape == (12, 400) and beats.median.dtype == np.float32
    assert 40 <= beats.heart_rate <= 160
    expected = beats.heart_rate * x.shape[1] / FS / 60
    assert abs(len(beats.r_peaks) - expected) <= 1.5
    assert beats.clean.sum() >= 0.7 * len(beats.r_peaks)
    # each clean beat's QRS (80 ms before to 120 ms after R, leads centred) correlates with the median's
    qrs = beats.beats[:, :, 110:210] - beats.beats[:, :, 110:210].mean(axis=2, keepdims=True)
    med = (beats.median[:, 110:210] - beats.median[:, 110:210].mean(axis=1, keepdims=True)).reshape(-1)
    corr = qrs.reshape(len(qrs), -1) @ med / (np.linalg.norm(qrs.reshape(len(qrs), -1), axis=1) * np.linalg.norm(med))
    assert corr.min() >= 0.9


@needs_data
def test_all_real_records_run_and_flat_leads_are_caught() -> None:
    from aiecg.io import read_ecg

    files = sorted(glob.glob(str(DATA / "cinc2021" / "*.hea"))) + sorted(
        glob.glob(str(DATA / "ptbxl" / "records500" / "*.hea")))
    assert len(files) >= 50
    reasons = {}
    for path in files:
        ecg = read_ecg(path)
        beats = extract_beats(preprocess(ecg.signal, ecg.fs), FS, ecg.leads)
        reasons[Path(path).stem] = beats.qc_reason
        assert beats.median.shape == (len(ecg.leads), 400)
    # two Chapman records hold an all-zero V2, one a lead buried in noise; the other records pass
    assert reasons["JS20004"] == "flat lead V2"
    assert reasons["JS20008"] == "flat lead V2"
    assert reasons["JS20007"].startswith("excessive noise in lead V6")
    passed = [k for k, v in reasons.items() if v == ""]
    assert len(passed) >= len(files) - 3


def test_clipping_is_found_on_the_raw_strip_and_real_records_pass(shared_data):
    from aiecg.ecg import STANDARD_LEADS
    from aiecg.io import read_ecg
    from aiecg.signal.beats import detect_clipping
    from aiecg.signal.leads import select_leads

    t = np.arange(5000) / 500.0
    x = 0.5 * np.sin(2 * np.pi * 1.2 * t)[None, :].repeat(12, axis=0)
    assert detect_clipping(x, 500.0, STANDARD_LEADS) == (True, "")
    x[8] = np.clip(x[8] + np.clip(t - 3, 0, None) * 4, -5, 5)  # V3 drifts onto the +5 mV rail
    assert detect_clipping(x, 500.0, STANDARD_LEADS) == (False, "saturated lead V3")
    for path in sorted((shared_data / "ptbxl" / "records500").glob("*.hea"))[:30]:
        ecg = read_ecg(path)
        assert detect_clipping(select_leads(ecg.signal, ecg.leads, STANDARD_LEADS), ecg.fs, STANDARD_LEADS)[0], path
