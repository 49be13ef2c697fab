"""Plausibility limits every reader applies before it returns an ECG, and the wording of library failures.

Limits (checked on every record at read time, so a later stage never meets an absurd recording):

- Sampling rate ``MIN_FS`` = 50 Hz to ``MAX_FS`` = 20 kHz. The diagnostic band of the resting ECG reaches
  150 Hz (AHA recommendations, Kligfield et al., Circulation 2007;115:1306) and 100 Hz records (PTB-XL
  ``records100``) are the lowest rate in public use; below 50 Hz the QRS complex (~40 Hz content) is aliased and
  no measurement or model input can be made. High-resolution ECGs are sampled at 1-10 kHz (late-potential work,
  Simson 1981); nothing recorded from the body surface needs more than 20 kHz. A rate must also be a whole
  number of Hz, as every ECG device's is (GE 500, Philips 500/1000, Mortara 1000, MIT-BIH 360, INCART 257,
  Holter 128/256): a rate such as 5000.001 Hz is a damaged field, and with whole rates the resampling factor
  to any whole model rate is a ratio up/down with both terms <= 20,000 (after dividing by the gcd).
- Duration ``MIN_DURATION_S`` = 2 s to ``MAX_DURATION_S`` = 30 min. Under 2 s a strip holds at most one or two
  beats (one RR interval at 30 bpm), which is not a recording any median beat, measurement or model can use;
  resting ECGs last 10 s, exercise and long-term strips up to minutes.
- Size ``MAX_VALUES`` = 16 million samples over all leads (64 MB as float32; 12 leads x 22 min at 1 kHz), the
  ceiling on what one record may cost in memory, whatever its rate and duration. Readers check declared sizes
  against it before they load anything.
- Median beats: the same rate limits and 0.2-5 s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from aiecg.ecg import ECG
from aiecg.errors import ECGReadError

MIN_FS = 50.0
MAX_FS = 20_000.0
MIN_DURATION_S = 2.0
MAX_DURATION_S = 1800.0
MAX_VALUES = 16_000_000
MEDIAN_DURATION_S = (0.2, 5.0)


def check_fs(path: str | Path, fs: float, what: str = "signal") -> None:
    """Refuse a sampling rate outside [MIN_FS, MAX_FS] or not a whole number of Hz."""
    if not (math.isfinite(fs) and MIN_FS <= fs <= MAX_FS):
        raise ECGReadError(
            path, f"implausible {what} sampling rate {fs:g} Hz: aiecg reads ECGs sampled at "
                  f"{MIN_FS:g} Hz to {MAX_FS:g} Hz (check the file's sampling-rate field or the fs option)")
    if abs(fs - round(fs)) > 1e-6:
        raise ECGReadError(
            path, f"{what} sampling rate {fs!r} Hz is not a whole number of Hz: no ECG device samples at such a "
                  "rate (check the file's sampling-rate field or the fs option)")


def check_size(path: str | Path, n_leads: int, n_samples: int, fs: float | None = None) -> None:
    """Refuse a declared size before it is loaded: more than MAX_VALUES samples, or longer than MAX_DURATION_S."""
    if n_leads * n_samples > MAX_VALUES:
        raise ECGReadError(path, f"the file declares {n_leads} x {n_samples} samples, more than the "
                                 f"{MAX_VALUES:,} aiecg reads in one record: not a single ECG")
    if fs is not None and fs > 0 and n_samples / fs > MAX_DURATION_S:
        raise ECGReadError(path, f"the file declares {n_samples / fs:.0f} s of signal, longer than the "
                                 f"{MAX_DURATION_S:.0f} s aiecg reads in one record")


def check_plausible(ecg: ECG, path: str | Path | None = None) -> ECG:
    """Return ``ecg`` when its rate, duration and size are within the limits above; else ECGReadError."""
    where = path if path is not None else (ecg.source or ecg.record_id)
    check_fs(where, ecg.fs)
    check_size(where, len(ecg.leads), ecg.n_samples, ecg.fs)
    if ecg.duration_s < MIN_DURATION_S:
        raise ECGReadError(where, f"the recording lasts {ecg.duration_s:.3g} s ({ecg.n_samples} samples at "
                                  f"{ecg.fs:g} Hz), less than the {MIN_DURATION_S:g} s aiecg needs: "
                                  "truncated file or wrong sampling rate?")
    if ecg.median is not None and ecg.median_fs is not None:
        check_fs(where, ecg.median_fs, "median beat")
        low, high = MEDIAN_DURATION_S
        length = ecg.median.shape[1] / ecg.median_fs
        if not low <= length <= high:
            raise ECGReadError(where, f"the median beat lasts {length:.3g} s ({ecg.median.shape[1]} samples at "
                                      f"{ecg.median_fs:g} Hz); a median beat lasts {low:g}-{high:g} s")
    return ecg


def library_detail(exc: BaseException, limit: int = 160) -> str:
    """The library's own text of ``exc``, as a trailing detail: ``" [library: IndexError: ...]"``.

    Reader messages start with the package's words (what is wrong with the file); this is only appended.
    """
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f" [library: {type(exc).__name__}{': ' + text if text else ''}]"


LIBRARY_MARK = " [library: "
"""Where a reader's own words end and a library's text begins, in an ECGReadError reason."""


def describe(value: Any) -> str:
    """A short printable form of a file's field value for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
