"""The 10 s rhythm strip: the whole filtered 12-lead recording at a stated rate, the input of rhythm-strip models.

A strip is cut from the same filtered signal the median beat comes from
(:func:`aiecg.signal.record.analyse_signal`: band-pass, notch, resampling to the store's rate, pacing spikes
blanked), resampled to ``StripConfig.fs`` by a polyphase filter (:func:`aiecg.signal.filters.resample`) and cut to
the first ``seconds`` of the recording. LV-mass models that read the whole 10 s strip rather than the median beat:
LVM-AI (Khurshid et al., Circ Cardiovasc Imaging 2021;14:e012281).

The length rule: a recording longer than ``seconds`` keeps its first ``seconds``; one shorter by at most
``PAD_TOLERANCE_S`` (a device that stops a few samples early) is completed with zeros, the baseline of the
high-passed signal; a shorter one has no strip (:class:`StripTooShort`, the record's error row says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiecg.signal.filters import resample

PAD_TOLERANCE_S = 0.1
"""How much shorter than ``seconds`` a recording may be; the missing end is filled with zeros."""


class StripTooShort(ValueError):
    """The recording is shorter than the strip (by more than :data:`PAD_TOLERANCE_S`)."""


@dataclass(frozen=True)
class StripConfig:
    """The rhythm strips a store keeps (``aiecg prepare --strips``).

    Attributes:
        fs: sampling rate of the strip in Hz (250: the rate of the strips in LVM-AI; 500 keeps the store's rate).
        seconds: strip duration in seconds (10: a standard resting ECG).
    """

    fs: float = 250.0
    seconds: float = 10.0

    @property
    def samples(self) -> int:
        return int(round(self.fs * self.seconds))


def rhythm_strip(x: np.ndarray, fs: float, config: StripConfig) -> np.ndarray:
    """The strip of a filtered signal ``x`` [lead, time] at ``fs``: float32 [lead, ``config.samples``].

    Raises:
        StripTooShort: the recording lasts less than ``config.seconds - PAD_TOLERANCE_S``.
    """
    duration = x.shape[1] / fs
    if duration < config.seconds - PAD_TOLERANCE_S - 1e-9:
        raise StripTooShort(f"the recording lasts {duration:.2f} s; rhythm strips need {config.seconds:g} s "
                            f"(at most {PAD_TOLERANCE_S:g} s less)")
    y = resample(np.asarray(x, dtype=np.float64), fs, config.fs)
    out = np.zeros((x.shape[0], config.samples), np.float32)
    n = min(config.samples, y.shape[1])
    out[:, :n] = y[:, :n]
    return out
