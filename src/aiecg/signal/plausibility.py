"""Physiological plausibility of a recording's amplitudes and polarity, on its median beat.

QC (``quality.py``) asks whether a lead can be measured; this asks whether the numbers can be a human heart
as recorded by a standard 12-lead ECG, which catches errors no noise check sees:

- Amplitude: the QRS peak-to-peak of a lead is at most ~4-5 mV in adults, up to ~6-7 mV in marked LVH (Sokolow
  1949; Romhilt 1968); the median over the 12 leads is ~0.5-1.5 mV (at most 1.9 mV in the ~200 real records
  beside the project; 4.2 mV, with one lead at 10 mV, in the most extreme LVH of the 2,500 of the synthetic demo
  cohort). A strip ten times larger (a units error: 10 uV per count read as 1 uV, or uV read as 100 uV) gives
  5-20 mV in the median lead and Sokolow-Lyon values no heart produces. The record is rejected when one lead
  exceeds ``reject_mv`` or the median lead ``reject_median_mv``; a lead above ``flag_mv`` is noted.
- Polarity: ventricular depolarisation runs from the right shoulder towards the left leg and chest, so the QRS
  of aVR is predominantly negative and that of lead I predominantly positive in almost every recording
  (exceptions: left/right arm electrodes reversed, dextrocardia, some extreme right axes). V5 and V6 face the
  left ventricle and show a dominant R; the sinus P wave is upright in lead II. When aVR is upright, leads I,
  II, V5 and V6 are negative AND the P wave in II is clearly negative, every lead has the opposite sign of a
  heart's: the signal was inverted (a sign error in an export), and the record is rejected. The QRS pattern
  alone also occurs in disease (an extreme axis with lateral QS complexes: 3 of the ~200 real records beside
  the project), so without a clearly inverted P wave it is a note; so is aVR upright with lead I negative and
  the others not all negative, the arm-electrode reversal pattern (or dextrocardia).

Einthoven consistency (III = II - I) is checked in ``quality.py``. Pure numpy, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlausibilityConfig:
    """Limits of the plausibility checks.

    Attributes:
        flag_mv: a lead's median-beat QRS peak-to-peak above this (mV) is noted.
        reject_mv: above this (mV) in one lead the record is rejected: no human ECG lead reaches it; a units
            error does.
        reject_median_mv: above this (mV) in the median lead the record is rejected.
        inverted_p_mv: a P wave in lead II whose net deflection is below minus this (mV) is inverted.
        low_mv: the largest lead's QRS peak-to-peak below this (mV) is noted (a possible units error the other
            way, or a very low-voltage ECG).
        qrs_half_width_s: half-width of the QRS window around R where the delineation found no boundaries.
    """

    flag_mv: float = 5.0
    reject_mv: float = 15.0
    reject_median_mv: float = 5.0
    inverted_p_mv: float = 0.04
    low_mv: float = 0.3
    qrs_half_width_s: float = 0.06


@dataclass(frozen=True)
class Plausibility:
    """The verdict: ``reject`` ('' when the record may be used) and ``notes`` (warnings that keep it)."""

    reject: str = ""
    notes: tuple[str, ...] = ()


def _qrs_window(n: int, fs: float, r: int, qrs_on: float, qrs_off: float, half: float) -> slice:
    if math.isfinite(qrs_on) and math.isfinite(qrs_off) and qrs_off > qrs_on:
        start, stop = int(math.floor(qrs_on)), int(math.ceil(qrs_off)) + 1
    else:
        start, stop = r - int(round(half * fs)), r + int(round(half * fs)) + 1
    return slice(max(start, 0), min(stop, n))


def _net(values: np.ndarray) -> float:
    """A wave's dominant deflection: its largest upward minus its largest downward excursion from its level at
    onset (positive: upright)."""
    values = values - values[0]
    return float(values.max() + values.min())


def check_plausibility(median: np.ndarray, leads: Sequence[str], fs: float, r: int,
                       qrs_on: float = math.nan, qrs_off: float = math.nan, exclude: Sequence[str] = (),
                       cfg: PlausibilityConfig | None = None, p_on: float = math.nan,
                       p_off: float = math.nan) -> Plausibility:
    """Amplitude and polarity checks on a median beat [lead, time] in mV (see the module docstring).

    Args:
        median: the median beat; ``r`` is the sample of its R peak.
        leads: the lead names of its rows.
        qrs_on, qrs_off: the global QRS boundaries in samples of ``median`` (a window around R if NaN).
        p_on, p_off: the global P-wave boundaries (NaN: no P wave found, as in atrial fibrillation).
        exclude: leads that failed QC (their values are not used).
    """
    cfg = cfg or PlausibilityConfig()
    window = _qrs_window(median.shape[-1], fs, int(r), qrs_on, qrs_off, cfg.qrs_half_width_s)
    qrs = np.asarray(median, dtype=float)[:, window]
    usable = {name: i for i, name in enumerate(leads) if name not in set(exclude)}
    if qrs.shape[-1] < 2 or not usable:
        return Plausibility()
    p2p = {name: float(np.ptp(qrs[i])) for name, i in usable.items() if np.all(np.isfinite(qrs[i]))}
    if not p2p:
        return Plausibility()
    notes: list[str] = []
    largest = max(p2p, key=p2p.__getitem__)
    middle = float(np.median(list(p2p.values())))
    if p2p[largest] > cfg.reject_mv or middle > cfg.reject_median_mv:
        return Plausibility(
            f"implausible amplitude: QRS of {p2p[largest]:.1f} mV peak to peak in lead {largest}, {middle:.1f} mV "
            f"in the median lead (no human ECG exceeds ~{cfg.reject_mv:g} and ~{cfg.reject_median_mv:g} mV); a "
            "units error? (e.g. values 10x too large: check the file's units or gain)")
    if p2p[largest] > cfg.flag_mv:
        notes.append(f"very large QRS: {p2p[largest]:.1f} mV peak to peak in lead {largest} (check the units "
                     "if the patient has no marked hypertrophy)")
    elif p2p[largest] < cfg.low_mv:
        notes.append(f"very small QRS: at most {p2p[largest]:.2f} mV peak to peak (a units error, or a "
                     "low-voltage ECG)")

    def net(name: str) -> float:
        return _net(qrs[usable[name]])

    if {"I", "aVR"} <= p2p.keys() and net("aVR") > 0 and net("I") < 0:
        others = [name for name in ("II", "V5", "V6") if name in p2p]
        if len(others) == 3 and all(net(name) < 0 for name in others):
            p_wave = _p_wave_ii(median, leads, p_on, p_off)
            if p_wave < -cfg.inverted_p_mv:
                return Plausibility(
                    "every lead looks inverted: aVR is upright while I, II, V5 and V6 are negative and the P wave "
                    f"in II is inverted ({p_wave:.2f} mV), the opposite of a heart's polarity; the signal's sign "
                    "is flipped (check the export or the reader's gain sign)", tuple(notes))
            notes.append("QRS polarity of an inverted signal (aVR upright; I, II, V5 and V6 negative) with no "
                         "inverted P wave: check the signal's sign (or an extreme axis with lateral QS complexes)")
            return Plausibility("", tuple(notes))
        notes.append("lead I negative and aVR upright with normal chest leads: left/right arm electrodes "
                     "reversed, or dextrocardia")
    return Plausibility("", tuple(notes))


def _p_wave_ii(median: np.ndarray, leads: Sequence[str], p_on: float, p_off: float) -> float:
    """Net deflection of the P wave in lead II (mV); NaN without lead II or a P wave inside the beat."""
    if "II" not in leads or not (math.isfinite(p_on) and math.isfinite(p_off)):
        return math.nan
    start, stop = max(int(math.floor(p_on)), 0), min(int(math.ceil(p_off)) + 1, median.shape[-1])
    if stop - start < 2:
        return math.nan
    return _net(np.asarray(median[list(leads).index("II"), start:stop], dtype=float))
