"""Rhythm strips: the stated rate and duration, the length rule, and the same filtered signal as the median."""

import numpy as np
import pytest

from aiecg.data.prepare import SHORT_RECORDING, PrepareConfig, prepare_record
from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.signal.strip import PAD_TOLERANCE_S, StripConfig, StripTooShort, rhythm_strip
from aiecg.synth.record import FS, synthesise_record


def _sine(seconds: float, fs: float = 500.0, hz: float = 5.0) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    return np.tile(np.sin(2 * np.pi * hz * t), (12, 1))


def test_a_strip_is_resampled_to_its_rate_and_cut_to_its_duration():
    x = _sine(12.0)
    strip = rhythm_strip(x, 500.0, StripConfig(fs=250.0, seconds=10.0))
    assert strip.shape == (12, 2500) and strip.dtype == np.float32
    expected = np.sin(2 * np.pi * 5.0 * np.arange(2500) / 250.0)
    assert np.abs(strip[3, 50:-50] - expected[50:-50]).max() < 1e-3  # the first 10 s, unchanged below Nyquist
    same_rate = rhythm_strip(x, 500.0, StripConfig(fs=500.0, seconds=10.0))
    np.testing.assert_array_equal(same_rate, x[:, :5000].astype(np.float32))


def test_a_slightly_short_recording_is_completed_with_zeros_and_a_short_one_refused():
    config = StripConfig(fs=250.0, seconds=10.0)
    strip = rhythm_strip(_sine(10.0 - PAD_TOLERANCE_S / 2), 500.0, config)
    assert strip.shape == (12, 2500)
    assert np.all(strip[:, -10:] == 0) and np.abs(strip[:, 2000:2100]).max() > 0.5
    with pytest.raises(StripTooShort, match=r"lasts 9\.00 s; rhythm strips need 10 s"):
        rhythm_strip(_sine(9.0), 500.0, config)


def _ecg(seconds: float) -> ECG:
    participant = {"sex": 1, "age": 55.0, "bmi": 26.0, "_mass_z": 0.0, "_heart_rate": 70.0}
    record = synthesise_record(participant, np.random.default_rng(1), duration=seconds)
    return ECG(signal=record.signal.astype(np.float32), leads=tuple(STANDARD_LEADS), fs=FS, record_id="r1")


def test_prepare_keeps_the_strip_of_the_filtered_signal_and_reports_a_short_recording():
    config = PrepareConfig(store_beats=False, strips=StripConfig(fs=250.0, seconds=10.0))
    row = prepare_record("r1", "r1.xml", None, config, ecg=_ecg(10.0))
    assert row["status"] == "ok" and row["strip"].shape == (12, 2500)
    without = prepare_record("r1", "r1.xml", None, PrepareConfig(store_beats=False), ecg=_ecg(10.0))
    assert "strip" not in without
    np.testing.assert_array_equal(row["median"], without["median"])  # strips change nothing else
    analysis = config.analyse(_ecg(10.0))
    np.testing.assert_allclose(row["strip"], rhythm_strip(analysis.filtered, analysis.fs, config.strips))
    short = prepare_record("r1", "r1.xml", None, config, ecg=_ecg(8.0))
    assert short["status"] == SHORT_RECORDING
    assert "lasts 8.00 s" in short["reason"] and "without --strips" in short["reason"]
    assert short["strip"].shape == (12, 2500) and not short["strip"].any()


def test_the_strip_setting_round_trips_and_a_config_without_strips_is_unchanged():
    config = PrepareConfig(strips=StripConfig(fs=500.0, seconds=8.0))
    assert PrepareConfig.from_dict(config.to_dict()) == config
    assert "strips" not in PrepareConfig().to_dict()
    assert PrepareConfig.from_dict(PrepareConfig().to_dict()).strips is None


def _manifest() -> dict:
    from aiecg.data.prepare import strip_spec

    config = PrepareConfig(strips=StripConfig())
    return {"fs": 500.0, "window": 400, "r_offset": 150, "preprocessing": config.to_dict(),
            "leads": list(STANDARD_LEADS), "strips": strip_spec(config.strips)}


def test_a_rhythm_contract_asks_new_recordings_for_the_strip_and_a_median_one_does_not():
    from aiecg.contract import check_recording, input_contract
    from aiecg.errors import BundleError

    rhythm = input_contract(["I", "V5"], _manifest(), "rhythm")
    median = input_contract(["I", "V5"], _manifest())
    assert rhythm["strips"] == {"fs": 250.0, "seconds": 10.0, "samples": 2500} and "strips" not in median
    assert PrepareConfig.for_model(rhythm).strips == StripConfig()
    assert PrepareConfig.for_model(median).strips is None  # a median model trained on a store with strips
    recording = {"fs": 500.0, "leads": list(STANDARD_LEADS), "duration_s": 8.0}
    check_recording(median, recording, "a.xml")
    with pytest.raises(BundleError, match=r"a.xml: 8.00 s long; the model reads 10 s rhythm strips"):
        check_recording(rhythm, recording, "a.xml")
