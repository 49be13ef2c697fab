"""Pre-processing filters and lead algebra."""

from __future__ import annotations

import numpy as np
import pytest

from aiecg.ecg import STANDARD_LEADS
from aiecg.signal.filters import FilterConfig, preprocess
from aiecg.signal.leads import derive_limb_leads, select_leads


def _tone(freq: float, fs: float, seconds: float = 10.0, amp: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return amp * np.sin(2 * np.pi * freq * t)


def _gain(out: np.ndarray, inp: np.ndarray) -> float:
    core = slice(out.shape[-1] // 5, -out.shape[-1] // 5)  # away from the edges
    return float(np.std(out[..., core]) / np.std(inp[..., core]))


def test_default_filter_passes_the_ecg_band_and_removes_wander_and_mains() -> None:
    fs = 500.0
    assert _gain(preprocess(_tone(10, fs)[None], fs), _tone(10, fs)[None]) == pytest.approx(1.0, abs=0.01)
    assert _gain(preprocess(_tone(30, fs)[None], fs), _tone(30, fs)[None]) == pytest.approx(1.0, abs=0.03)
    assert _gain(preprocess(_tone(0.1, fs)[None], fs), _tone(0.1, fs)[None]) < 0.05  # baseline wander
    assert _gain(preprocess(_tone(50, fs)[None], fs), _tone(50, fs)[None]) < 0.02  # mains
    assert _gain(preprocess(_tone(200, fs)[None], fs), _tone(200, fs)[None]) < 0.3  # above the low-pass


def test_zero_phase_filter_does_not_shift_a_peak() -> None:
    fs = 500.0
    t = np.arange(5000) / fs
    x = np.exp(-0.5 * ((t - 5.0) / 0.01) ** 2)[None]
    y = preprocess(x, fs)
    assert int(np.argmax(y)) == int(np.argmax(x))
    assert y.dtype == np.float32


def test_resampling_to_target_rate() -> None:
    x = np.stack([_tone(5, 1000.0), _tone(7, 1000.0)])
    y = preprocess(x, 1000.0, FilterConfig(target_fs=500.0))
    assert y.shape == (2, 5000)
    np.testing.assert_allclose(y[0, 1000:4000], _tone(5, 500.0)[1000:4000], atol=0.02)
    z = preprocess(_tone(5, 250.0)[None], 250.0)
    assert z.shape == (1, 5000)


def test_filters_can_be_switched_off() -> None:
    x = np.random.default_rng(0).normal(size=(3, 1000)).astype(np.float32)
    cfg = FilterConfig(highpass_hz=None, lowpass_hz=None, notch_hz=None)
    np.testing.assert_array_equal(preprocess(x, 500.0, cfg), x)
    with pytest.raises(ValueError, match="highpass_hz"):
        preprocess(x, 500.0, FilterConfig(highpass_hz=300.0))


def test_derive_limb_leads_follows_einthoven_and_goldberger() -> None:
    rng = np.random.default_rng(1)
    lead_i, lead_ii = rng.normal(size=100), rng.normal(size=100)
    x, names = derive_limb_leads(np.stack([lead_i, lead_ii]), ["I", "II"])
    assert names == ("I", "II", "III", "aVR", "aVL", "aVF")
    np.testing.assert_allclose(x[2], lead_ii - lead_i)
    np.testing.assert_allclose(x[3], -(lead_i + lead_ii) / 2)
    np.testing.assert_allclose(x[4], lead_i - lead_ii / 2)
    np.testing.assert_allclose(x[5], lead_ii - lead_i / 2)
    # the augmented leads sum to zero, and I + III = II (Einthoven)
    np.testing.assert_allclose(x[3] + x[4] + x[5], 0, atol=1e-12)
    np.testing.assert_allclose(x[0] + x[2], x[1])


def test_derive_works_on_beat_stacks_and_keeps_existing_leads() -> None:
    beats = np.ones((4, 3, 10), np.float32)
    out, names = derive_limb_leads(beats, ["I", "II", "V1"])
    assert out.shape == (4, 7, 10) and out.dtype == np.float32
    assert names[:3] == ("I", "II", "V1")
    full = np.zeros((12, 5))
    same, names = derive_limb_leads(full, STANDARD_LEADS)
    assert same is full and names == STANDARD_LEADS
    with pytest.raises(KeyError, match="I and II"):
        derive_limb_leads(np.zeros((2, 5)), ["I", "V1"])


def test_select_leads_orders_and_derives() -> None:
    x = np.arange(6, dtype=float).reshape(3, 2)  # I, II, V1
    out = select_leads(x, ["I", "II", "V1"], ["V1", "avl", "I"])
    np.testing.assert_allclose(out, [[4, 5], [0 - 2 / 2, 1 - 3 / 2], [0, 1]])
    with pytest.raises(KeyError, match="V6"):
        select_leads(x, ["I", "II", "V1"], ["V6"])
    with pytest.raises(KeyError, match="aVF"):
        select_leads(x, ["I", "II", "V1"], ["aVF"], derive=False)
