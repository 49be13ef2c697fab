"""The faster per-record routines return exactly what the numpy/scipy routines they replace return."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy import signal as sps

from aiecg.ecg import STANDARD_LEADS
from aiecg.signal import fastops
from aiecg.signal.delineation import BEAT_COLUMNS, beat_fiducials, delineate, fiducial_table, wide_median
from aiecg.signal.filters import FilterConfig, _design, preprocess
from aiecg.signal.quality import clipped_leads
from aiecg.signal.record import analyse_signal

RNG = np.random.default_rng(7)
STRIP = RNG.standard_normal((12, 5000))


def _stack(n_beats: int, dtype: type) -> np.ndarray:
    """A [lead, beat, window] stack gathered the way the beat code gathers one (fancy index: lead-fastest)."""
    starts = RNG.integers(0, 4000, n_beats)
    return STRIP.astype(dtype)[:, starts[:, None] + np.arange(400)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_is_numpys_bit_for_bit_and_in_the_same_memory_order(dtype: type) -> None:
    for n_beats in range(1, 2 * fastops.NETWORK_MAX + 3):  # the sorting network and the sorting path
        stack = _stack(n_beats, dtype)
        for array, axis in ((stack, 1), (np.ascontiguousarray(stack.transpose(1, 0, 2)), 0),
                            (np.round(stack, 1), 1)):  # ties
            expected, got = np.median(array, axis=axis), fastops.median(array, axis=axis)
            assert got.dtype == expected.dtype and got.shape == expected.shape
            assert got.strides == expected.strides  # a later sum over it adds up in the same order
            np.testing.assert_array_equal(got, expected)


def test_median_is_nan_where_a_slice_holds_a_nan() -> None:
    for n_beats in (3, 8, 30):
        stack = _stack(n_beats, np.float64)
        stack[2, n_beats - 1, 5] = np.nan
        got = fastops.median(stack, axis=1)
        np.testing.assert_array_equal(got, np.median(stack, axis=1))
        assert np.isnan(got[2, 5]) and np.isfinite(np.delete(got.ravel(), 2 * 400 + 5)).all()


def test_sorting_network_sorts_every_zero_one_input() -> None:
    for n in range(1, 13):  # the 0-1 principle (Knuth 5.3.4): sorting all 0-1 inputs means sorting all inputs
        bits = ((np.arange(2 ** n)[None, :] >> np.arange(n)[:, None]) & 1).astype(np.int8)
        rows = list(bits)
        for i, j in fastops.sorting_network(n):
            assert i < j < n
            rows[i], rows[j] = np.minimum(rows[i], rows[j]), np.maximum(rows[i], rows[j])
        assert (np.diff(np.stack(rows), axis=0) >= 0).all(), n


def test_nanmedian_is_numpys_with_missing_columns() -> None:
    for n_beats in (1, 2, 5, 12):
        stack = _stack(n_beats, np.float64)
        stack[:, RNG.random(stack.shape[1:]) < 0.3] = np.nan  # windows reaching past the strip
        stack[:, :, :10] = np.nan  # columns no beat reaches
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(stack, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no all-NaN warning from ours
            got = fastops.nanmedian(stack, axis=1)
        assert got.strides == expected.strides
        np.testing.assert_array_equal(got, expected)
        assert np.isnan(got[:, :10]).all()


def test_cached_filter_gives_each_sampling_rate_its_own_design_and_initial_conditions() -> None:
    fastops._zi.cache_clear()
    cfg = FilterConfig()
    for fs in (500.0, 1000.0, 500.0, 250.0):
        n = int(10 * fs)
        x = RNG.standard_normal((3, n))
        sos = sps.butter(2, 0.5, "highpass", fs=fs, output="sos")  # designed afresh, as scipy users do
        np.testing.assert_array_equal(fastops.sosfiltfilt(sos, x, padlen=int(fs)),
                                      sps.sosfiltfilt(sos, x, axis=-1, padlen=int(fs)))
        design = _design(fs, cfg)
        expected = sps.sosfiltfilt(design, x, axis=-1, padlen=min(n - 1, int(fs)))
        if fs != cfg.target_fs:
            expected = sps.resample_poly(expected, int(cfg.target_fs), int(fs), axis=-1, padtype="line")
        np.testing.assert_array_equal(preprocess(x, fs, cfg), expected.astype(np.float32))
    # one entry per distinct design: 3 rates x (high-pass alone, full design), the repeated 500 Hz reused
    assert fastops._zi.cache_info().currsize == 6
    assert fastops._zi.cache_info().hits >= 2


def test_sosfiltfilt_matches_scipy_for_short_signals_and_default_padding() -> None:
    sos = sps.butter(2, [5.0, 30.0], "bandpass", fs=500.0, output="sos")
    for n in (2, 16, 17, 300):
        x = RNG.standard_normal((2, n))
        for padlen in (0, 1, n - 1):
            np.testing.assert_array_equal(fastops.sosfiltfilt(sos, x, padlen=padlen),
                                          sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen))
        if n > 15:  # scipy's default padding: 3 x (2 x sections + 1) taps
            np.testing.assert_array_equal(fastops.sosfiltfilt(sos, x), sps.sosfiltfilt(sos, x, axis=-1))
    with pytest.raises(ValueError):  # scipy's own check
        fastops.sosfiltfilt(sos, RNG.standard_normal((2, 10)), padlen=10)


def _strip(hr: float = 60.0, fs: float = 500.0) -> np.ndarray:
    t = np.arange(int(10 * fs)) / fs
    beats = np.arange(0.4, 10.0, 60.0 / hr)
    qrs = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats)
    twave = sum(0.3 * np.exp(-0.5 * ((t - b - 0.3) / 0.04) ** 2) for b in beats)
    pwave = sum(0.1 * np.exp(-0.5 * ((t - b + 0.16) / 0.02) ** 2) for b in beats)
    gains = np.linspace(0.5, 1.5, 12)[:, None]
    return gains * (qrs + twave + pwave) + 0.01 * RNG.standard_normal((12, t.size))


def test_per_beat_table_is_delineated_on_first_use_and_equals_the_eager_one() -> None:
    fs = 500.0
    raw = _strip()
    analysis = analyse_signal(raw, fs, STANDARD_LEADS)
    assert "table" not in analysis.__dict__  # nothing delineated per beat yet
    table = analysis.table
    assert analysis.table is table  # once
    # the eager computation, step by step
    x = preprocess(raw, fs)
    bs = analysis.beats
    full, r0 = wide_median(x, bs.r_peaks, bs.clean, fs)
    rr = float(np.median(np.diff(bs.r_peaks))) / fs
    fid = delineate(full, fs, r0, rr)
    expected = fiducial_table(bs.r_peaks, beat_fiducials(x, fs, bs.r_peaks, bs.clean, full, r0, fid), bs.clean, fs)
    assert list(table.columns) == list(BEAT_COLUMNS) and len(table) == bs.r_peaks.size == 10
    np.testing.assert_array_equal(table.to_numpy(dtype=float), expected.to_numpy(dtype=float))
    assert pickle.loads(pickle.dumps(analysis)).table.equals(table)  # a worker can hand it back


def test_clipped_leads_screen_keeps_the_plateaus_and_only_those() -> None:
    fs = 500.0
    raw = _strip()
    pinned = raw.copy()
    pinned[7, 1000:1150] = pinned[7].max() + 0.5  # V2 at its rail for 300 ms
    assert clipped_leads(pinned, fs, STANDARD_LEADS) == {"V2": "saturated lead V2"}
    # 300 samples at V3's maximum, but in runs of 50 (shorter than the 100 of a plateau): not clipped
    comb = raw.copy()
    comb[8, [s for k in range(6) for s in range(200 + 700 * k, 250 + 700 * k)]] = comb[8].max() + 0.5
    assert clipped_leads(comb, fs, STANDARD_LEADS) == {}
    # the lowest extreme, as the highest
    low = raw.copy()
    low[9, 3000:3200] = low[9].min() - 0.5
    assert clipped_leads(low, fs, STANDARD_LEADS) == {"V4": "saturated lead V4"}


def test_median_of_short_1d_arrays_is_numpys_scalar() -> None:
    for n in range(1, fastops.SHORT_1D + 3):
        for a in (RNG.standard_normal(n), RNG.standard_normal(n).astype(np.float32),
                  np.diff(np.sort(RNG.integers(0, 5000, n + 1))), np.round(RNG.standard_normal(n), 1)):
            expected, got = np.median(a), fastops.median(a)
            assert type(got) is type(expected) and got == expected
        with_nan = RNG.standard_normal(n)
        with_nan[n // 2] = np.nan
        assert np.isnan(fastops.median(with_nan)) and type(fastops.median(with_nan)) is np.float64
