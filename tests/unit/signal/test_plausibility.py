"""Physiological plausibility: a units error (10x amplitudes) and an inverted signal are rejected with the reason;
arm-electrode reversal, a very large QRS and the real disease patterns that mimic inversion are notes only."""

import numpy as np
import pytest

from aiecg.ecg import STANDARD_LEADS
from aiecg.io import read_ecg
from aiecg.signal.plausibility import check_plausibility
from aiecg.signal.record import analyse_signal


@pytest.fixture(scope="module")
def ukb(cardiosoft_xml):
    ecg = read_ecg(cardiosoft_xml)
    assert list(ecg.leads) == list(STANDARD_LEADS)
    return ecg


def _lead(name):
    return STANDARD_LEADS.index(name)


def test_the_recording_as_is_passes_without_notes(ukb):
    analysis = analyse_signal(ukb.signal, ukb.fs, ukb.leads)
    assert analysis.beats.qc_ok and analysis.beats.qc_reason == ""
    assert not any("QRS" in note or "inverted" in note for note in analysis.beats.qc_notes)


def test_ten_times_the_amplitude_is_rejected_as_a_units_error(ukb):
    analysis = analyse_signal(ukb.signal * 10, ukb.fs, ukb.leads)
    assert not analysis.beats.qc_ok
    assert analysis.beats.qc_reason.startswith("implausible amplitude: QRS of 20.1 mV peak to peak in lead V4")
    assert "units error" in analysis.beats.qc_reason


def test_every_lead_inverted_is_rejected_naming_the_polarity(ukb):
    analysis = analyse_signal(-ukb.signal, ukb.fs, ukb.leads)
    assert not analysis.beats.qc_ok
    assert analysis.beats.qc_reason.startswith("every lead looks inverted: aVR is upright while I, II, V5 and V6 are "
                                               "negative and the P wave in II is inverted")


def test_left_right_arm_reversal_is_a_note_not_a_rejection(ukb):
    swapped = ukb.signal.copy()
    swapped[_lead("I")] = -ukb.signal[_lead("I")]
    for a, b in (("II", "III"), ("aVR", "aVL")):
        swapped[_lead(a)], swapped[_lead(b)] = ukb.signal[_lead(b)], ukb.signal[_lead(a)]
    analysis = analyse_signal(swapped, ukb.fs, ukb.leads)
    assert analysis.beats.qc_ok, analysis.beats.qc_reason
    assert any("left/right arm electrodes reversed" in note for note in analysis.beats.qc_notes)


def test_a_large_qrs_is_flagged_and_a_gross_one_rejected_on_a_median_beat():
    beat = np.zeros((12, 400))
    beat[:, 150] = 1.0  # an upright 1 mV R in every lead ...
    beat[_lead("aVR"), 150] = -1.0  # ... except aVR
    assert check_plausibility(beat, STANDARD_LEADS, 500.0, 150).reject == ""
    big = beat.copy()
    big[_lead("V5"), 150] = 6.0
    verdict = check_plausibility(big, STANDARD_LEADS, 500.0, 150)
    assert verdict.reject == "" and verdict.notes[0].startswith("very large QRS: 6.0 mV peak to peak in lead V5")
    big[_lead("V5"), 150] = 16.0
    assert check_plausibility(big, STANDARD_LEADS, 500.0, 150).reject.startswith(
        "implausible amplitude: QRS of 16.0 mV peak to peak in lead V5")
    assert check_plausibility(big, STANDARD_LEADS, 500.0, 150, exclude=["V5"]).reject == ""  # a bad lead: unused
    assert check_plausibility(beat * 4.5, STANDARD_LEADS, 500.0, 150).reject == ""  # the synthetic cohort's
    assert check_plausibility(beat * 6, STANDARD_LEADS, 500.0, 150).reject.startswith(  # most extreme LVH: kept
        "implausible amplitude")  # 6 mV in the median lead: every lead 6x too large


def test_a_paced_record_with_lateral_qs_complexes_is_kept_and_flagged_paced(shared_data):
    """LUDB 111: bipolar ventricular pacing with complete AV block (its header); the paced QRS has the lateral
    polarity of an inverted signal, and no sinus P wave leads it: kept, flagged paced, not rejected as inverted."""
    ecg = read_ecg(shared_data / "ludb/data/111.hea")
    analysis = analyse_signal(ecg.signal, ecg.fs, ecg.leads)
    assert "inverted" not in analysis.beats.qc_reason and "amplitude" not in analysis.beats.qc_reason
    assert any(note.startswith("paced (ventricular)") for note in analysis.beats.qc_notes)


@pytest.mark.parametrize("record", ["ludb/data/90.hea", "cinc2021/JS20005.hea"])
def test_real_disease_that_mimics_inversion_is_kept_with_a_note(shared_data, record):
    """Extreme axis with lateral QS complexes: the QRS pattern of inversion, with an upright sinus P wave."""
    ecg = read_ecg(shared_data / record)
    analysis = analyse_signal(ecg.signal, ecg.fs, ecg.leads)
    assert "inverted" not in analysis.beats.qc_reason and "amplitude" not in analysis.beats.qc_reason
    assert any("QRS polarity of an inverted signal" in note for note in analysis.beats.qc_notes)
