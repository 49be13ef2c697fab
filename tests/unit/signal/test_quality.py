"""Record QC on built signals: clipping vs a flat stretch, flat vs quiet leads, bad-lead handling, Einthoven,
plausibility, and R-peak candidates moved onto the QRS."""

from __future__ import annotations

import numpy as np
import pytest

from aiecg.ecg import STANDARD_LEADS
from aiecg.signal.beats import detect_clipping, extract_beats, lead_quality, qrs_energy, snap_to_qrs
from aiecg.signal.filters import preprocess
from aiecg.signal.quality import clipped_leads, einthoven_note, plausibility
from aiecg.signal.record import analyse_signal
from tests.unit.signal.test_beats import synth_ecg

FS = 500.0


def _limb_consistent(x: np.ndarray) -> np.ndarray:
    """Make III, aVR, aVL, aVF of a 12-lead strip follow I and II exactly (as a real 12-lead file does)."""
    x = x.copy()
    lead_i, lead_ii = x[0], x[1]
    x[2], x[3], x[4], x[5] = lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2
    return x


def _zero_between_beats(hr: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """A lead of positive beats that holds exactly 0.0 between them (quantised, baseline-corrected storage)."""
    raw, truth, _ = synth_ecg(21, hr=hr, noise_mv=0.0, wander_mv=0.0)
    lead = np.zeros(raw.shape[1])
    t = np.arange(raw.shape[1]) / FS
    for r in truth / FS:
        lead += 1.2 * np.exp(-0.5 * ((t - r) / 0.012) ** 2) + 0.3 * np.exp(-0.5 * ((t - r - 0.26) / 0.05) ** 2)
    lead[lead < 0.005] = 0.0  # exactly zero between beats: up to ~1 s at 40 bpm
    return raw, np.round(lead / 0.005) * 0.005


def test_lead_holding_exactly_zero_between_beats_is_not_saturated() -> None:
    raw, lead = _zero_between_beats()
    v5 = STANDARD_LEADS.index("V5")
    raw[v5] = lead
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[1], lead != 0, [1]]))))
    assert runs.max() >= 0.2 * FS  # the stretches of exact zeros are longer than the 200 ms clipping run
    assert detect_clipping(raw, FS, STANDARD_LEADS) == (True, "")
    result = analyse_signal(raw, FS, STANDARD_LEADS)
    assert result.beats.qc_ok, result.beats.qc_reason
    assert result.beats.bad_leads == {}


def test_lead_pinned_at_its_rail_for_200_ms_is_saturated() -> None:
    raw, _, _ = synth_ecg(22, hr=70)
    v2 = STANDARD_LEADS.index("V2")
    rail = 5.0
    pinned = raw.copy()
    pinned[v2, 2000:2100] = rail  # 100 samples = 200 ms at the amplifier's limit
    assert detect_clipping(pinned, FS, STANDARD_LEADS) == (False, "saturated lead V2")
    result = analyse_signal(pinned, FS, STANDARD_LEADS)
    assert (result.beats.qc_ok, result.beats.qc_reason) == (False, "saturated lead V2")
    # 150 ms at the rail is physiologically possible (a tall R never lasts that long, but an artefact can): kept
    short = raw.copy()
    short[v2, 2000:2075] = rail
    assert detect_clipping(short, FS, STANDARD_LEADS) == (True, "")


def test_clipped_plateau_that_swallows_beats_is_saturated_even_at_the_leads_median() -> None:
    raw, truth, _ = synth_ecg(23, hr=75, wander_mv=0.0)
    v4 = STANDARD_LEADS.index("V4")
    raw[v4, 1500:] = raw[v4].max()  # pinned for the rest of the strip: most samples sit at the rail
    assert "V4" in clipped_leads(raw, FS, STANDARD_LEADS, truth / FS)


def test_low_gain_and_quiet_leads_are_not_flat() -> None:
    raw, _, _ = synth_ecg(24, hr=65, noise_mv=0.005)
    raw[STANDARD_LEADS.index("V1")] *= 0.03  # a low-gain lead: QRS ~30 uV
    raw[STANDARD_LEADS.index("aVL")] *= 0.05
    x = preprocess(raw, FS)
    assert lead_quality(x, FS, STANDARD_LEADS) == {}
    beats = extract_beats(x, FS, STANDARD_LEADS)
    assert beats.qc_ok and beats.bad_leads == {}


def test_disconnected_lead_is_flat_and_only_a_model_input_fails_the_record() -> None:
    raw, _, _ = synth_ecg(25, hr=72)
    rng = np.random.default_rng(3)
    noise_only = rng.normal(0, 0.003, raw.shape[1])
    # aVL is not a model input: the record stays usable, the reason is noted and aVL's amplitudes are NaN
    a = raw.copy()
    a[STANDARD_LEADS.index("aVL")] = noise_only
    result = analyse_signal(a, FS, STANDARD_LEADS)
    assert result.beats.qc_ok, result.beats.qc_reason
    assert result.beats.bad_leads == {"aVL": "flat lead aVL"}
    assert any(n.startswith("flat lead aVL") for n in result.beats.qc_notes)
    assert np.isnan(result.measurements["R_aVL"]) and np.isfinite(result.measurements["R_V5"])
    assert np.isfinite(result.measurements["qrs_duration_ms"])
    # V3 is a model input: the record fails, with the reason, and keeps its measurements for the other leads
    b = raw.copy()
    b[STANDARD_LEADS.index("V3")] = 0.0
    result = analyse_signal(b, FS, STANDARD_LEADS)
    assert (result.beats.qc_ok, result.beats.qc_reason) == (False, "flat lead V3")
    assert np.isnan(result.measurements["R_V3"]) and np.isfinite(result.measurements["R_V4"])


def test_einthoven_warning() -> None:
    raw, _, _ = synth_ecg(26, hr=70, noise_mv=0.005)
    good = _limb_consistent(raw)
    assert einthoven_note(good, STANDARD_LEADS) == ""
    bad = good.copy()
    bad[0] = 2.0 * bad[0]  # lead I stored at twice its gain (III and II as they should be)
    note = einthoven_note(bad, STANDARD_LEADS)
    assert note.startswith("Einthoven's law fails")
    result = analyse_signal(bad, FS, STANDARD_LEADS)
    assert result.beats.qc_ok  # a warning, not a rejection
    assert any(n.startswith("Einthoven's law fails") for n in result.beats.qc_notes)
    # 8-lead records (III derived) have nothing to check
    eight = [STANDARD_LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    assert einthoven_note(bad[eight], [STANDARD_LEADS[i] for i in eight]) == ""


def test_plausibility_flags_gross_failures() -> None:
    ok = {"qrs_duration_ms": 96.0, "heart_rate_bpm": 62.0}
    assert plausibility(ok, 11, 10 * 60 / 62.0) == ""
    assert plausibility({**ok, "qrs_duration_ms": 310.0}, 11, 9.7).startswith("implausible QRS duration (310 ms")
    assert plausibility({**ok, "qrs_duration_ms": 30.0}, 11, 9.7).startswith("implausible QRS duration")
    assert plausibility({**ok, "heart_rate_bpm": 270.0}, 11, 9.7).startswith("implausible heart rate")
    assert plausibility({**ok, "heart_rate_bpm": 15.0}, 3, 9.7).startswith("implausible heart rate")
    # a median RR of 0.4 s (150 bpm) but 9 beats over 9.7 s (50 bpm): R over-detection
    assert plausibility({**ok, "heart_rate_bpm": 150.0}, 9, 9.7).startswith("inconsistent RR intervals")


def test_r_candidates_far_from_the_qrs_are_moved_not_dropped() -> None:
    raw, truth, _ = synth_ecg(27, hr=60, noise_mv=0.01)
    combined = qrs_energy(preprocess(raw, FS), FS)
    candidates = truth.copy()
    candidates[[1, 4, 6]] -= int(0.24 * FS)  # placed 240 ms early, on the P wave
    level = 0.4 * float(np.median(combined[truth]))
    assert (combined[candidates[[1, 4, 6]]] < level).all()
    moved = snap_to_qrs(combined, candidates, level, FS)
    assert moved.size == truth.size
    assert np.abs(moved - truth).max() <= int(0.02 * FS)
    # a candidate with no QRS within 0.3 s is dropped, and two candidates on one QRS become one
    extra = np.sort(np.concatenate([truth, [truth[2] + 5]]))
    assert snap_to_qrs(combined, extra, level, FS).size == truth.size


@pytest.mark.parametrize("hr", [45, 150])
def test_clean_synthetic_records_pass_at_both_ends_of_the_rate_range(hr: float) -> None:
    raw, _, _ = synth_ecg(28, hr=hr)
    result = analyse_signal(raw, FS, STANDARD_LEADS)
    assert result.beats.qc_ok, result.beats.qc_reason
    assert result.measurements["heart_rate_bpm"] == pytest.approx(hr, rel=0.05)
