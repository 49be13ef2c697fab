"""Pre-processing of resting ECGs: baseline-wander removal, low-pass, mains notch and resampling.

All filters are zero-phase (forward-backward, ``scipy.signal.sosfiltfilt``) so that they move no wave in time
and distort the ST segment as little as possible: the AHA/ACCF/HRS recommendations (Kligfield et al.,
Circulation 2007;115:1306) allow a high-pass corner up to 0.67 Hz when the filter has no phase distortion,
whereas a causal filter needs 0.05 Hz. The filter design and its initial conditions are cached per (fs, config),
so a cohort pays for them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import gcd

import numpy as np
from scipy import signal as sps

from aiecg.signal.fastops import sosfiltfilt


@dataclass(frozen=True)
class FilterConfig:
    """Pre-processing parameters (saved in the prepared store's manifest).

    Attributes:
        highpass_hz: baseline-wander corner in Hz (0.5: below the lowest heart rate of interest, 30 bpm,
            and within the 0.67 Hz the AHA recommendation allows for zero-phase filters), or None.
        highpass_order: Butterworth order of the high-pass; forward-backward filtering doubles it.
        lowpass_hz: low-pass corner in Hz (100: keeps the QRS energy, which lies below ~40 Hz, and R-wave
            amplitudes within ~1 % at 500 Hz while removing muscle noise), or None to keep the full band.
        lowpass_order: Butterworth order of the low-pass.
        notch_hz: mains frequency to notch (50 in Europe, 60 in North America), or None.
        notch_q: quality factor of the notch (30: a ~1.7 Hz wide notch at 50 Hz).
        target_fs: output sampling rate in Hz (500: the rate of UK Biobank, SHIP and PTB-XL records).
    """

    highpass_hz: float | None = 0.5
    highpass_order: int = 2
    lowpass_hz: float | None = 100.0
    lowpass_order: int = 2
    notch_hz: float | None = 50.0
    notch_q: float = 30.0
    target_fs: float = 500.0


@lru_cache(maxsize=64)
def _design(fs: float, cfg: FilterConfig) -> np.ndarray | None:
    nyquist = fs / 2.0
    sections = []
    if cfg.highpass_hz is not None:
        if not 0 < cfg.highpass_hz < nyquist:
            raise ValueError(f"highpass_hz={cfg.highpass_hz} must lie in (0, {nyquist}) Hz for fs={fs} Hz")
        sections.append(sps.butter(cfg.highpass_order, cfg.highpass_hz, "highpass", fs=fs, output="sos"))
    if cfg.lowpass_hz is not None and cfg.lowpass_hz < nyquist:
        sections.append(sps.butter(cfg.lowpass_order, cfg.lowpass_hz, "lowpass", fs=fs, output="sos"))
    if cfg.notch_hz is not None and cfg.notch_hz < nyquist:
        b, a = sps.iirnotch(cfg.notch_hz, cfg.notch_q, fs=fs)
        sections.append(sps.tf2sos(b, a))
    return np.concatenate(sections) if sections else None


def preprocess(signal: np.ndarray, fs: float, cfg: FilterConfig | None = None) -> np.ndarray:
    """Filter and resample an ECG [lead, time] in millivolts; returns float32 [lead, time'] at ``cfg.target_fs``.

    Filters run at the input rate (before resampling, so the notch sees the mains frequency and a low-pass
    above the new Nyquist frequency is skipped: ``resample_poly``'s anti-aliasing FIR covers it). The signal is
    padded by odd reflection of up to 1 s at each end, so that the 0.5 Hz high-pass does not ring at the strip
    edges. A low-pass or notch at or above the input Nyquist frequency is skipped.
    """
    cfg = cfg or FilterConfig()
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"signal must be 2-D [lead, time], got shape {x.shape}")
    if not fs > 0:
        raise ValueError(f"sampling rate must be > 0 Hz, got {fs}")
    sos = _design(float(fs), cfg)
    if sos is not None and x.shape[1] > 1:
        x = sosfiltfilt(sos, x, padlen=min(x.shape[1] - 1, int(round(fs))))
    return np.ascontiguousarray(resample(x, fs, cfg.target_fs), dtype=np.float32)


def resample(x: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """``x`` [lead, time] at ``fs`` resampled to ``target_fs`` by a polyphase filter (``resample_poly``, whose
    anti-aliasing FIR keeps the band below the new Nyquist frequency); unchanged at the same rate."""
    if np.isclose(fs, target_fs):
        return x
    up, down = _ratio(fs, target_fs)
    return sps.resample_poly(x, up, down, axis=-1, padtype="line")


def _ratio(fs: float, target: float) -> tuple[int, int]:
    """Integer up/down factors for ``resample_poly`` (rates rounded to 1 mHz)."""
    a, b = int(round(target * 1000)), int(round(fs * 1000))
    g = gcd(a, b)
    return a // g, b // g
