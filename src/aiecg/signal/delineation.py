"""Global (12-lead) wave delineation: P, QRS and T boundaries of the median beat, projected onto every beat, and
each lead's own boundaries.

Definition (IEC 60601-2-25, as GE 12SL, Glasgow and the CSE referees measure): a global boundary is the earliest
onset and the latest offset over all leads, robust to a single stray lead. We get it from all leads together:

* QRS: the spatial velocity (the norm over leads of the first derivative; Xue Q, Reddy S. J Electrocardiol
  1997;30 Suppl:S31) of the median beat. It crosses a small share of its QRS peak over the noise floor (4 % at
  onset, 6 % at offset), bordering a quiet stretch of 16 ms (so the slope at the tip of a Q, R or S wave, or
  the plateau of a slurred terminal S, does not end the search); from there the boundary moves out to the
  nearest minimum of the spatial velocity (at most 10 ms): the isoelectric point where the first lead departs
  from, and the last lead returns to, its baseline. A threshold alone reads the QRS 11 ms late and 9 ms early
  against the cardiologists' marks; one lead must carry a deflection over the whole span, so a single lead's
  noise does not widen it. Printed QRS durations differ between devices by definition (Kligfield P et al. Am
  Heart J 2018;200:1): Philips' "meanqrsdur" follows the longest single-lead QRS (129DYPRG.XML: 135 ms, lead
  II running into an elevated ST segment, while the device's own global onset and offset span 96 ms).
* P and T: the spatial magnitude (norm over leads) of the beat against the isoelectric level just before QRS
  onset. The P peak is its maximum between the previous T wave and QRS onset; P onset and offset are where
  it falls below a share of that peak, the offset no later than shortly after the tangent on its descending
  limb (as for T end): the atrial repolarisation (Ta) wave, which a long PR interval uncovers, returns slowly
  and is not part of the P wave (Sprague HB, White PD. J Clin Invest 1925;1:389); both then move out to the
  isoelectric point as the QRS's do. The T peak is its maximum after the ST segment; T end is the tangent
  method (the steepest descent after the peak, extended to the baseline; Lepeschkin E, Surawicz B.
  Circulation 1952;6:378), which on one Gaussian lobe lands at 2 SD after its centre.
* Per beat: the median's fiducials are projected onto every beat through its (cross-correlation aligned)
  R peak and refined by matching a short multi-lead segment of the median around each boundary against the
  beat (normalised cross-correlation over a few tens of ms; the T segment searches wider, since the QT
  interval follows the preceding RR). Beats unlike the median (premature ventricular beats, artefacts) are
  delineated on their own; a P wave is only reported for such a beat when its P segment matches the
  median's.
* Per lead (``lead_fiducials``, ``beat_lead_fiducials``): each lead's own P, QRS and T onset, peak and offset,
  searched around the global wave (R-peak time and QRS width per lead); the global boundary is not computed
  from them.

References each figure is measured against (``benchmarks/ludb_delineation.py``, ``measure_delineation.py``):
the cardiologists' per-lead annotations of LUDB combined as IEC 60601-2-25 defines a global boundary
(second-earliest onset, second-latest offset over the 12 leads), which define the boundaries; the devices'
printed global values (GE, Philips, HL7 aECG, DICOM in ``shared/data/formats``), which mark 10-20 ms narrower
QRS complexes than those cardiologists; and the synthetic generator's truth, which follows the same visible
definition (``aiecg.synth.record``). The isoelectric walk, the 16 ms quiet stretch and the P checks were set on
the first two, not on the generator.

Positions are in samples of the filtered strip (float, NaN where a wave is absent); ``fiducial_table`` turns them
into seconds from the start of the recording.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from aiecg.signal import fastops

WAVE_KEYS: tuple[str, ...] = ("p_on", "p_peak", "p_off", "qrs_on", "qrs_off", "t_peak", "t_off")
BEAT_COLUMNS: tuple[str, ...] = ("beat", "r_peak_s") + tuple(f"{k}_s" for k in WAVE_KEYS) + ("clean",)
LEAD_KEYS: tuple[str, ...] = ("p_on", "p_peak", "p_off", "qrs_on", "qrs_peak", "qrs_off", "t_peak", "t_off")
LEAD_COLUMNS: tuple[str, ...] = ("beat", "lead") + tuple(f"{k}_s" for k in LEAD_KEYS)
_GLOBAL_OF_LEAD = {"p_on": "p_on", "p_peak": "p_peak", "p_off": "p_off", "qrs_on": "qrs_on", "qrs_peak": "",
                   "qrs_off": "qrs_off", "t_peak": "t_peak", "t_off": "t_off"}
NAN = float("nan")


@dataclass(frozen=True)
class DelineationConfig:
    """Thresholds of the delineation (fractions of a wave's peak; times in s).

    Attributes:
        before_s, after_s: the delineation median spans R - before to R + after (wider than the store's
            median beat, so that a long PR interval and a long QT interval at a slow rate fit).
        smooth_s: moving average of the spatial velocity.
        qrs_on_frac, qrs_off_frac: QRS onset/offset where the spatial velocity crosses this share of its QRS
            peak above the noise floor.
        quiet_s: a boundary borders at least this long a stretch below the threshold (16 ms: the slurred terminal
            S of right bundle-branch block in I, aVL and V5-V6, with V1's R', pauses on a plateau for up to ~15 ms
            before its slow return, which is still QRS; on LUDB's complete RBBB record a 10 ms stretch ended the
            QRS 54 ms before the cardiologists' offset, 16 ms ends it within 4 ms).
        pr_active_frac: the PR segment (the 40 ms ending 40 ms before the QRS's first sample over 30 % of its
            peak) counts as moving when its median spatial velocity exceeds the floor by this share of the QRS
            peak; the onset threshold then stands on that level instead of the floor (a QRS starts where the
            activity departs from the PR segment, IEC 60601-2-25's "departs from its baseline"). On LUDB's
            development half 3 % (against 4 %, the onset threshold itself) brought the per-record QRS-duration
            SD from 12.1 to 11.8 ms (9.6 without the records inspected) and left the per-beat QRS-onset error
            at 5 ms; chosen between those two values only.
        p_min_mv: no P wave when the P magnitude of the median stays below this (atrial fibrillation, or a
            P wave lost in noise).
        p_match: a beat unlike the median has a P wave when its P segment correlates above this with the
            median's.
        p_late_s: P offset at most this long after the tangent on the P wave's descending limb.
        t_start_s: the T peak is searched from this long after QRS offset (past the ST segment).
        refine: refine each beat's projected boundaries by local cross-correlation with the median.
        lead_qrs_frac, lead_p_frac, lead_p_min_mv, lead_t_min_mv: per-lead boundaries (``lead_fiducials``): a
            lead's QRS spans where its own slope exceeds this share of its QRS peak slope (moved out to the
            nearest slope minimum); its P wave where it stays above this share of its P peak; a lead whose P (T)
            wave stays under the amplitude given has none (NaN).
        own_qrs_on_frac, own_qrs_off_frac, own_quiet_s: the QRS thresholds for a beat delineated on its own
            (one unlike the median): a single beat is noisier than a median, and a premature ventricular beat's
            T wave follows its wide QRS without a quiet ST segment, so its boundaries cross higher thresholds
            over a shorter quiet stretch.
        iso_smooth_s, iso_walk_s, iso_tol: from the threshold crossing, the QRS onset (offset) moves back (on) to the
            nearest minimum of the spatial velocity smoothed over ``iso_smooth_s``, at most ``iso_walk_s``
            away, each step falling by more than ``iso_tol`` of the QRS peak velocity (noise on a flat baseline
            does not walk it out): the isoelectric point where the earliest lead departs from (the latest lead
            returns to) its baseline, the boundary IEC 60601-2-25 and cardiologists mark (on LUDB's per-lead annotations
            combined over leads, a threshold crossing alone reads the QRS 11 ms late and 9 ms early). 10 ms:
            the annotators mark wider than the devices print (GE, Philips and others in ``shared/data/formats``),
            and 10 ms with a 0.2 % step keeps the QRS duration within 10 ms of both on average (LUDB -3 ms,
            devices +8 ms, ``benchmarks/ludb_delineation.py``); an unbounded walk would match LUDB alone and
            read 16 ms longer than the devices. The minimum is placed between samples (a parabola through its
            neighbours).
        p_walk_s: the same for P onset and offset, at most this far.
        p_consistency: the median beat has a P wave only when the beats' P segments correlate with its own at
            this level (median over clean beats, +-10 ms): sinus P waves repeat (LUDB: 0.85-0.99), the
            fibrillatory waves of atrial fibrillation do not (0.2-0.6), and their median is a small bump, not a P.
        p_max_s: a P wave longer than this is not one (the longest P waves of left-atrial enlargement last
            about 160 ms; a longer one is a boundary run into the T wave or the PR segment).
    """

    before_s: float = 0.5
    after_s: float = 0.7
    smooth_s: float = 0.004
    qrs_on_frac: float = 0.04
    qrs_off_frac: float = 0.06
    quiet_s: float = 0.016
    pr_active_frac: float = 0.03
    p_frac: float = 0.1
    p_min_mv: float = 0.02
    p_match: float = 0.6
    p_late_s: float = 0.01
    t_start_s: float = 0.08
    t_frac: float = 0.05
    t_late_s: float = 0.03
    refine: bool = True
    lead_qrs_frac: float = 0.1
    lead_p_frac: float = 0.2
    lead_p_min_mv: float = 0.02
    lead_t_min_mv: float = 0.05
    own_qrs_on_frac: float = 0.08
    own_qrs_off_frac: float = 0.15
    own_quiet_s: float = 0.006
    iso_smooth_s: float = 0.01
    iso_walk_s: float = 0.01
    iso_tol: float = 0.002
    p_walk_s: float = 0.03
    p_consistency: float = 0.7
    p_max_s: float = 0.2


@dataclass(frozen=True)
class Fiducials:
    """Wave boundaries and peaks in samples (float; NaN where absent)."""

    p_on: float = NAN
    p_peak: float = NAN
    p_off: float = NAN
    qrs_on: float = NAN
    qrs_off: float = NAN
    t_peak: float = NAN
    t_off: float = NAN

    def shifted(self, delta: float) -> Fiducials:
        return Fiducials(**{f.name: getattr(self, f.name) + delta for f in fields(self)})

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    return uniform_filter1d(x, k, axis=-1, mode="nearest") if k > 1 else x


def spatial_velocity(x: np.ndarray, fs: float, smooth_s: float = 0.004) -> np.ndarray:
    """Norm over leads of the central first difference (mV per sample), smoothed over ``smooth_s``."""
    return _smooth(_speed(np.asarray(x, dtype=np.float64)), max(1, int(round(smooth_s * fs))))


def _quiet_runs(mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ending, starting): mask[t-k+1..t] all true, and mask[t..t+k-1] all true."""
    n = mask.size
    csum = np.concatenate([[0], np.cumsum(mask.astype(np.int64))])
    ending = np.zeros(n, dtype=bool)
    if n >= k:
        ending[k - 1 :] = (csum[k:] - csum[:-k]) == k
    starting = np.zeros(n, dtype=bool)
    starting[: n - k + 1] = ending[k - 1 :]
    return ending, starting


def _speed(x: np.ndarray) -> np.ndarray:
    """Norm over leads of the central first difference (mV per sample), unsmoothed."""
    d = np.empty_like(x)
    d[:, 1:-1] = (x[:, 2:] - x[:, :-2]) / 2
    d[:, 0], d[:, -1] = d[:, 1], d[:, -2]
    return np.sqrt((d * d).sum(axis=0))


def walk_to_minimum(s: np.ndarray, start: float, step: int, limit: int, tol: float = 0.0) -> float:
    """From ``start``, move by ``step`` (-1 back, +1 on) while ``s`` keeps falling (by more than ``tol``), at most
    ``limit`` samples: the nearest local minimum (the most isoelectric point) of ``s`` on that side, placed between
    samples by a parabola through its neighbours; ``start`` where s does not fall at once."""
    n = s.size
    i = min(max(int(np.floor(start)) if step < 0 else int(np.ceil(start)), 0), n - 1)
    end = min(max(i + step * limit, 0), n - 1)
    j = i
    while j != end and s[j + step] < s[j] - tol:
        j += step
    if j == i:
        return float(start)
    if j != end and 0 < j < n - 1:  # a minimum, not the limit: the vertex of the parabola through j - 1, j, j + 1
        a, b, c = s[j - 1], s[j], s[j + 1]
        curvature = a - 2.0 * b + c
        if curvature > 0:
            return float(j + np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))
    return float(j)


def qrs_bounds(
    x: np.ndarray, fs: float, r_offset: int, cfg: DelineationConfig | None = None
) -> tuple[float, float]:
    """Global QRS onset and offset (samples) of a beat [lead, time] around ``r_offset``: where the spatial
    velocity of all leads crosses a share of its QRS peak (bordering a quiet stretch), moved to the nearest
    minimum of the more smoothed spatial velocity (the isoelectric point where the first lead departs from, and
    the last lead returns to, its baseline: IEC 60601-2-25's earliest onset and latest offset over the leads)."""
    cfg = cfg or DelineationConfig()
    speed = _speed(np.asarray(x, dtype=np.float64))
    sv = _smooth(speed, max(1, int(round(cfg.smooth_s * fs))))
    n = sv.size
    lo = max(1, r_offset - int(round(0.1 * fs)))
    hi = min(n - 1, r_offset + int(round(0.15 * fs)))
    if hi <= lo:
        return NAN, NAN
    peak = float(sv[lo:hi].max())
    floor = float(np.percentile(sv, 10))
    if peak <= floor:
        return NAN, NAN
    high = np.flatnonzero(sv[lo:hi] > floor + 0.3 * (peak - floor)) + lo
    k = max(1, int(round(cfg.quiet_s * fs)))

    # the onset is the departure from the PR segment: where that segment itself moves (noise, an atrial
    # repolarisation wave), the threshold stands on its level rather than on the beat's quietest stretch
    base = floor
    a0, a1 = max(0, high[0] - int(round(0.08 * fs))), high[0] - int(round(0.04 * fs))
    if a1 > a0:
        level = float(np.median(sv[a0:a1]))
        if level > floor + cfg.pr_active_frac * (peak - floor):
            base = level
    thr = base + cfg.qrs_on_frac * (peak - floor)
    ending, _ = _quiet_runs(sv <= thr, k)
    before = np.flatnonzero(ending[: high[0]])
    if before.size:
        i = int(before[-1])  # last quiet sample; the crossing lies between i and i + 1
        onset = i + _crossing(sv[i], sv[i + 1], thr)
    else:
        onset = 0.0

    thr = floor + cfg.qrs_off_frac * (peak - floor)
    _, starting = _quiet_runs(sv <= thr, k)
    after = np.flatnonzero(starting[high[-1] + 1 :])
    if after.size:
        j = int(after[0]) + high[-1] + 1  # first quiet sample
        offset = j - 1 + _crossing(sv[j - 1], sv[j], thr)
    else:
        offset = float(n - 1)
    walk = int(round(cfg.iso_walk_s * fs))
    if walk > 0:
        iso = _smooth(speed, max(1, int(round(cfg.iso_smooth_s * fs))))
        tol = cfg.iso_tol * (peak - floor)
        onset = walk_to_minimum(iso, onset, -1, walk, tol)
        offset = walk_to_minimum(iso, offset, 1, walk, tol)
    return float(onset), float(offset)


def _crossing(a: float, b: float, thr: float) -> float:
    """Fraction in [0, 1] between two samples where a line from a to b crosses thr."""
    if a == b:
        return 0.5
    return float(np.clip((thr - a) / (b - a), 0.0, 1.0))


def _magnitude(y: np.ndarray, fs: float, smooth_s: float) -> np.ndarray:
    return _smooth(np.sqrt((y * y).sum(axis=0)), max(1, int(round(smooth_s * fs))))


def _p_wave(mag: np.ndarray, d: np.ndarray, iso: np.ndarray, fs: float, qrs_on: int, start: int,
            cfg: DelineationConfig) -> tuple[float, float, float]:
    """(onset, peak, offset) of the P wave between ``start`` and QRS onset, or NaNs; ``mag`` is the beat's spatial
    magnitude (``_magnitude``), ``d`` its gradient and ``iso`` the smoothed spatial velocity (the boundaries move
    out to its nearest minimum, the isoelectric point, as the QRS's do)."""
    stop = qrs_on - int(round(0.03 * fs))
    start = max(0, start)
    if stop - start < int(round(0.05 * fs)):
        return NAN, NAN, NAN
    peak = start + int(np.argmax(mag[start:stop]))
    level = float(mag[peak])
    base_before = float(mag[start:peak + 1].min())
    if level < cfg.p_min_mv or level - base_before < 0.5 * level:
        return NAN, NAN, NAN
    thr_on = base_before + cfg.p_frac * (level - base_before)
    below = np.flatnonzero(mag[start:peak] <= thr_on)
    if not below.size:
        return NAN, NAN, NAN
    i = start + int(below[-1])
    onset = i + _crossing(mag[i], mag[i + 1], thr_on)
    base_after = float(mag[peak:qrs_on + 1].min())
    thr_off = base_after + cfg.p_frac * (level - base_after)
    after = np.flatnonzero(mag[peak:qrs_on + 1] <= thr_off)
    j = peak + int(after[0]) if after.size else qrs_on
    offset = j - 1 + _crossing(mag[j - 1], mag[j], thr_off) if j > peak else float(j)
    # no later than p_late_s after the tangent at the steepest descent of the P wave's descending limb (up to 60
    # ms after its peak, half the longest normal P wave), extended to the baseline: after a long PR interval the
    # atrial repolarisation (Ta) wave keeps the magnitude up, and its slow return is not the P wave's
    hi = min(j, peak + int(round(0.06 * fs)))
    if hi > peak + 1:
        steep = peak + int(np.argmin(d[peak:hi]))
        if d[steep] < 0:
            offset = min(offset, steep + (mag[steep] - base_after) / -d[steep] + cfg.p_late_s * fs)
    walk = int(round(cfg.p_walk_s * fs))
    if walk > 0:
        onset = walk_to_minimum(iso, onset, -1, min(walk, max(0, int(onset) - start)))
        offset = walk_to_minimum(iso, offset, 1, min(walk, max(0, qrs_on - 2 - int(np.ceil(offset)))))
    return float(onset), float(peak), float(offset)


def _t_wave(mag: np.ndarray, d: np.ndarray, fs: float, qrs_off: int, stop: int,
            cfg: DelineationConfig) -> tuple[float, float]:
    """(peak, end) of the T wave between ``qrs_off + t_start_s`` and ``stop``; tangent-method end (``mag`` and
    ``d`` as for ``_p_wave``)."""
    start = qrs_off + int(round(cfg.t_start_s * fs))
    stop = min(stop, mag.size)
    if stop - start < int(round(0.04 * fs)):
        return NAN, NAN
    peak = start + int(np.argmax(mag[start:stop]))
    if peak >= stop - 2:
        return float(peak), NAN
    steep = peak + int(np.argmin(d[peak:stop]))
    base = float(mag[steep:stop].min())
    if d[steep] >= 0:
        return float(peak), NAN
    end = steep + (mag[steep] - base) / -d[steep]
    # the return to baseline (t_frac of the peak), no earlier than the tangent and at most t_late_s after it
    thr = base + cfg.t_frac * (mag[peak] - base)
    below = np.flatnonzero(mag[steep:stop] <= thr)
    late = end + cfg.t_late_s * fs
    if below.size:
        j = steep + int(below[0])
        end = min(max(end, j - 1 + _crossing(mag[j - 1], mag[j], thr)), late)
    else:
        end = late
    return float(peak), float(min(end, stop - 1))


def delineate(
    beat: np.ndarray, fs: float, r_offset: int, rr_s: float | None = None, cfg: DelineationConfig | None = None
) -> Fiducials:
    """Global fiducials of one beat or median beat [lead, time] whose R (fiducial) sample is ``r_offset``.

    ``rr_s`` (the RR interval before the beat) bounds the P search (after the previous T wave) and the T
    search (before the next P wave); without it the whole window is searched.
    """
    cfg = cfg or DelineationConfig()
    x = np.asarray(beat, dtype=np.float64)
    n = x.shape[1]
    on, off = qrs_bounds(x, fs, r_offset, cfg)
    if not (np.isfinite(on) and np.isfinite(off)):
        return Fiducials()
    ion, ioff = int(round(on)), int(round(off))
    b0 = max(0, ion - max(1, int(round(0.01 * fs))))
    baseline = x[:, b0:ion].mean(axis=1) if ion > b0 else x[:, ion]
    y = x - baseline[:, None]
    rr = float(rr_s) if rr_s is not None and np.isfinite(rr_s) and rr_s > 0 else None
    t_stop = n if rr is None else min(n, ion + int(round(min(0.8 * rr, rr - 0.08) * fs)))
    mag = _magnitude(y, fs, 0.01)  # the spatial magnitude of P and T, and its slope
    d = np.gradient(mag)
    t_peak, t_off = _t_wave(mag, d, fs, ioff, t_stop, cfg)
    p_start = max(0, ion - int(round(0.4 * fs)))
    if rr is not None:
        # the previous beat's T wave ends about one QT (at least 0.3 s and 60 % of the RR) after its QRS onset
        qt = (t_off - on) / fs if np.isfinite(t_off) else 0.4
        p_start = max(p_start, ion - int(round((rr - max(qt, 0.6 * rr)) * fs)))
    iso = _smooth(_speed(x), max(1, int(round(cfg.iso_smooth_s * fs))))
    p_on, p_peak, p_off = _p_wave(mag, d, iso, fs, ion, p_start, cfg)
    return Fiducials(p_on, p_peak, p_off, on, off, t_peak, t_off)


def lead_fiducials(x: np.ndarray, fs: float, fid: Fiducials, cfg: DelineationConfig | None = None) -> np.ndarray:
    """Per-lead boundaries and peaks [lead, ``LEAD_KEYS``] (samples, NaN where a lead shows no such wave) of a beat
    [lead, time] whose global fiducials are ``fid``.

    Each lead is searched around the global wave (the global boundaries are what IEC 60601-2-25 measures; these
    are each lead's own, for per-lead widths and R-peak times): the QRS where the lead's slope exceeds
    ``lead_qrs_frac`` of its peak slope, moved out to the nearest minimum of its smoothed slope; the QRS peak is
    the lead's largest deflection from the PR baseline; the P wave where the lead stays above ``lead_p_frac`` of
    its P peak; the T peak is the lead's largest ST-T deflection and T end the tangent at the steepest return
    after it, extended to the baseline.
    """
    cfg = cfg or DelineationConfig()
    x = np.asarray(x, dtype=np.float64)
    n_leads, n = x.shape
    out = np.full((n_leads, len(LEAD_KEYS)), NAN)
    if not (np.isfinite(fid.qrs_on) and np.isfinite(fid.qrs_off)):
        return out
    col = {k: i for i, k in enumerate(LEAD_KEYS)}
    ion, ioff = int(round(fid.qrs_on)), int(round(fid.qrs_off))
    b0 = max(0, ion - max(1, int(round(0.01 * fs))))
    y = x - (x[:, b0:ion].mean(axis=1) if ion > b0 else x[:, min(ion, n - 1)])[:, None]
    slope = np.abs(np.gradient(y, axis=1))
    fast = _smooth(slope, max(1, int(round(cfg.smooth_s * fs))))
    iso = _smooth(slope, max(1, int(round(cfg.iso_smooth_s * fs))))
    margin, walk = int(round(0.02 * fs)), int(round(cfg.iso_walk_s * fs))
    lo, hi = max(1, ion - margin), min(n - 1, ioff + margin)
    if hi - lo > 2:
        seg = fast[:, lo:hi]
        floor = np.percentile(fast, 10, axis=1)
        above = seg > (floor + cfg.lead_qrs_frac * (seg.max(axis=1) - floor))[:, None]
        first = lo + np.argmax(above, axis=1)
        last = hi - 1 - np.argmax(above[:, ::-1], axis=1)
        for lead in np.flatnonzero(above.any(axis=1)):
            on = walk_to_minimum(iso[lead], float(first[lead]), -1, walk)
            off = walk_to_minimum(iso[lead], float(last[lead]), 1, walk)
            a, b = int(on), int(off) + 1
            out[lead, col["qrs_on"]], out[lead, col["qrs_off"]] = on, off
            out[lead, col["qrs_peak"]] = a + int(np.argmax(np.abs(y[lead, a:b])))
    if np.isfinite(fid.p_on) and np.isfinite(fid.p_off):
        pad = int(round(0.01 * fs))
        a, b = max(0, int(round(fid.p_on)) - pad), min(ion, int(round(fid.p_off)) + pad + 1)
        if b - a > 2:
            level = x[:, max(0, a - pad):a + 1].mean(axis=1)
            seg = np.abs(x[:, a:b] - level[:, None])
            peak = np.argmax(seg, axis=1)
            amp = seg[np.arange(n_leads), peak]
            for lead in np.flatnonzero(amp >= cfg.lead_p_min_mv):
                low = seg[lead] <= cfg.lead_p_frac * amp[lead]
                before, after = np.flatnonzero(low[:peak[lead]]), np.flatnonzero(low[peak[lead]:])
                out[lead, col["p_on"]] = a + (before[-1] if before.size else 0)
                out[lead, col["p_peak"]] = a + peak[lead]
                out[lead, col["p_off"]] = a + (peak[lead] + after[0] if after.size else b - a - 1)
    if np.isfinite(fid.t_off):
        a = min(n - 1, ioff + int(round(cfg.t_start_s * fs)))
        b = min(n, int(round(fid.t_off + 0.04 * fs)) + 1)
        if b - a > 2:
            seg = y[:, a:b]
            peak = np.argmax(np.abs(seg), axis=1)
            top = seg[np.arange(n_leads), peak]
            for lead in np.flatnonzero(np.abs(top) >= cfg.lead_t_min_mv):
                z = np.sign(top[lead]) * seg[lead]
                dz = np.gradient(z) if z.size > 1 else np.zeros(1)
                steep = peak[lead] + int(np.argmin(dz[peak[lead]:]))
                out[lead, col["t_peak"]] = a + peak[lead]
                if dz[steep] < 0:
                    out[lead, col["t_off"]] = a + min(steep + z[steep] / -dz[steep], b - a - 1)
    return out


# ---------------------------------------------------------------------------------------------- per beat


def wide_median(x: np.ndarray, r_peaks: np.ndarray, use: np.ndarray, fs: float,
                cfg: DelineationConfig | None = None) -> tuple[np.ndarray, int]:
    """Median over the ``use`` beats of windows R - before_s .. R + after_s (NaN outside the strip is
    ignored); returns (median [lead, window], R sample in the window)."""
    cfg = cfg or DelineationConfig()
    before, after = int(round(cfg.before_s * fs)), int(round(cfg.after_s * fs))
    n = x.shape[1]
    peaks = np.asarray(r_peaks, dtype=np.int64)[np.asarray(use, dtype=bool)]
    if peaks.size == 0:
        return np.zeros((x.shape[0], before + after), np.float64), before
    idx = peaks[:, None] + np.arange(-before, after)[None, :]
    valid = (idx >= 0) & (idx < n)
    seg = np.asarray(x)[:, np.clip(idx, 0, n - 1)].astype(np.float64, copy=False)  # only the windows in float64
    if valid.all():
        return fastops.median(seg, axis=1), before
    seg[:, ~valid] = np.nan
    every = valid.all(axis=0)  # the columns every beat reaches (all but the window's ends): a plain median
    if np.isnan(seg[:, :, every]).any():  # NaN in the strip itself: nanmedian ignores it there too
        every[:] = False
    med = np.empty_like(seg[:, 0])  # laid out in memory as np.nanmedian lays out its result
    med[:, every] = fastops.median(seg[:, :, every], axis=1)
    med[:, ~every] = fastops.nanmedian(seg[:, :, ~every], axis=1)
    missing = np.isnan(med[0])
    if missing.any():  # columns no beat reaches: hold the nearest value
        good = np.flatnonzero(~missing)
        nearest = good[np.clip(np.searchsorted(good, np.arange(med.shape[1])), 0, good.size - 1)]
        med = med[:, nearest]
    return med, before


def _segment(x: np.ndarray, centre: int, half: int) -> np.ndarray | None:
    lo, hi = centre - half, centre + half + 1
    if lo < 0 or hi > x.shape[1]:
        return None
    return x[:, lo:hi]


def _best_lag(x: np.ndarray, template: np.ndarray, centre: int, half: int, max_lag: int) -> tuple[int, float]:
    """Lag in [-max_lag, max_lag] maximising the normalised correlation (all leads pooled, each centred) of
    x[:, centre + lag - half : centre + lag + half + 1] with ``template``; (0, -1) if out of range."""
    lo, hi = centre - half - max_lag, centre + half + max_lag + 1
    if lo < 0 or hi > x.shape[1]:
        return 0, -1.0
    t = template - template.mean(axis=1, keepdims=True)
    win = np.lib.stride_tricks.sliding_window_view(x[:, lo:hi], 2 * half + 1, axis=1)  # [lead, lags, len]
    win = win - win.mean(axis=2, keepdims=True)
    num = np.einsum("lks,ls->k", win, t)
    den = np.sqrt(np.einsum("lks,lks->k", win, win) * (t * t).sum()) + 1e-12
    corr = num / den
    k = int(np.argmax(corr))
    return k - max_lag, float(corr[k])


def _best_lags(x: np.ndarray, template: np.ndarray, centres: np.ndarray, half: int,
               max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``_best_lag`` for many centres at once: (lags, correlations), correlation -1 where out of range."""
    n = x.shape[1]
    centres = np.asarray(centres, dtype=np.int64)
    lags = np.arange(-max_lag, max_lag + 1)
    ok = (centres - half - max_lag >= 0) & (centres + half + max_lag < n)
    out_lag, out_corr = np.zeros(centres.size, np.int64), np.full(centres.size, -1.0)
    if not ok.any():
        return out_lag, out_corr
    idx = centres[ok][:, None, None] + lags[None, :, None] + np.arange(-half, half + 1)[None, None, :]
    seg = np.asarray(x)[:, idx].astype(np.float64, copy=False)  # [lead, beat, lag, time]
    seg = seg - seg.mean(axis=3, keepdims=True)
    t = template - template.mean(axis=1, keepdims=True)
    num = np.einsum("lbks,ls->bk", seg, t)
    den = np.sqrt(np.einsum("lbks,lbks->bk", seg, seg) * (t * t).sum()) + 1e-12
    corr = num / den
    best = np.argmax(corr, axis=1)
    out_lag[ok] = lags[best]
    out_corr[ok] = corr[np.arange(best.size), best]
    return out_lag, out_corr


def beat_fiducials(
    x: np.ndarray, fs: float, r_peaks: np.ndarray, clean: np.ndarray, median: np.ndarray, r_offset: int,
    median_fid: Fiducials, cfg: DelineationConfig | None = None,
) -> list[Fiducials]:
    """Fiducials of every beat of the strip ``x`` [lead, time] (positions in strip samples).

    Clean beats get the median's fiducials through their R peak, each boundary refined by a local
    cross-correlation with the median; the others are delineated on their own.
    """
    cfg = cfg or DelineationConfig()
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[1]
    peaks = np.asarray(r_peaks, dtype=np.int64)
    rr = np.diff(peaks) / fs
    rr_before = np.concatenate([[fastops.median(rr) if rr.size else NAN], rr])
    ms = fs / 1000.0
    # (key, half window, max lag) of the boundary refinement
    plan = [("qrs_on", int(20 * ms), int(8 * ms)), ("qrs_off", int(20 * ms), int(8 * ms)),
            ("p_on", int(30 * ms), int(12 * ms)), ("p_off", int(30 * ms), int(12 * ms)),
            ("t_off", int(60 * ms), int(40 * ms))]
    out: list[Fiducials] = []
    before, after = int(round(cfg.before_s * fs)), int(round(cfg.after_s * fs))
    own_cfg = replace(cfg, qrs_on_frac=cfg.own_qrs_on_frac, qrs_off_frac=cfg.own_qrs_off_frac, quiet_s=cfg.own_quiet_s)
    # clean beats: the median's fiducials through the R peak, each boundary refined for all beats at once
    clean = np.asarray(clean, dtype=bool)
    projected = {b: median_fid.shifted(float(r - r_offset)).as_dict() for b, r in enumerate(peaks) if clean[b]}
    if cfg.refine and projected:
        rows = np.asarray(sorted(projected), dtype=np.int64)
        for key, half, max_lag in plan:
            m_pos = getattr(median_fid, key)
            if not np.isfinite(m_pos):
                continue
            tmpl = _segment(median, int(round(m_pos)), half)
            if tmpl is None:
                continue
            centres = np.rint(m_pos + (peaks[rows] - r_offset)).astype(np.int64)
            lags, corr = _best_lags(x, tmpl, centres, half, max_lag)
            for b, lag, c in zip(rows, lags, corr):
                if c >= 0.8:
                    projected[int(b)][key] += lag
                    if key == "t_off":
                        projected[int(b)]["t_peak"] += lag
    for b, r in enumerate(peaks):
        if clean[b]:
            fid = Fiducials(**projected[b])
        else:
            lo, hi = max(0, r - before), min(n, r + after)
            own = delineate(x[:, lo:hi], fs, int(r - lo), rr_before[b], own_cfg).shifted(float(lo))
            if np.isfinite(median_fid.p_on) and np.isfinite(own.qrs_on) and np.isfinite(own.p_on):
                # a P wave only where this beat's P segment matches the median's, at the same PR interval
                centre = 0.5 * (median_fid.p_on + median_fid.p_off)
                half = int(round(0.5 * (median_fid.p_off - median_fid.p_on)))
                tmpl = _segment(median, int(round(centre)), half)
                pos = int(round(own.qrs_on - (median_fid.qrs_on - centre)))
                lag, corr = _best_lag(x, tmpl, pos, half, int(20 * ms)) if tmpl is not None else (0, -1.0)
                if corr < cfg.p_match:
                    own = replace(own, p_on=NAN, p_peak=NAN, p_off=NAN)
            elif not np.isfinite(median_fid.p_on):
                own = replace(own, p_on=NAN, p_peak=NAN, p_off=NAN)
            fid = own
        values = {k: (v if np.isfinite(v) and 0 <= v <= n - 1 else NAN) for k, v in fid.as_dict().items()}
        out.append(Fiducials(**values))
    return out


def beat_lead_fiducials(
    x: np.ndarray, fs: float, r_peaks: np.ndarray, clean: np.ndarray, fiducials: list[Fiducials],
    r_offset: int, median_fid: Fiducials, median_leads: np.ndarray, cfg: DelineationConfig | None = None,
) -> list[np.ndarray]:
    """Every beat's per-lead fiducials [lead, ``LEAD_KEYS``] in strip samples.

    A clean beat carries the median's per-lead fiducials (``median_leads``, from ``lead_fiducials`` of the
    median) over by the shift of its own global boundary (``fiducials``, after refinement), so per-lead and
    global boundaries move together; a beat unlike the median is delineated lead by lead on its own. A wave the
    beat's global fiducials lack (no P wave) is NaN in every lead.
    """
    cfg = cfg or DelineationConfig()
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[1]
    before, after = int(round(cfg.before_s * fs)), int(round(cfg.after_s * fs))
    out = []
    for b, (r, fid) in enumerate(zip(np.asarray(r_peaks, dtype=np.int64), fiducials)):
        own = fid.as_dict()
        if clean[b]:
            med = median_fid.as_dict()
            shift = np.array([own[g] - med[g] if g else float(r - r_offset) for g in _GLOBAL_OF_LEAD.values()])
            leads = median_leads + shift[None, :]
        else:
            lo, hi = max(0, int(r) - before), min(n, int(r) + after)
            leads = lead_fiducials(x[:, lo:hi], fs, fid.shifted(-float(lo)), cfg) + lo
        for k, g in enumerate(_GLOBAL_OF_LEAD.values()):
            if g and not np.isfinite(own[g]):
                leads[:, k] = NAN
        leads[(leads < 0) | (leads > n - 1)] = NAN
        out.append(leads)
    return out


def lead_table(per_lead: list[np.ndarray], leads: tuple[str, ...] | list[str], fs: float) -> pd.DataFrame:
    """The long per-lead table: ``beat, lead, p_on_s, p_peak_s, p_off_s, qrs_on_s, qrs_peak_s, qrs_off_s,
    t_peak_s, t_off_s`` (seconds from the strip start), one row per beat and lead."""
    n_beats, names = len(per_lead), list(leads)
    values = np.stack(per_lead).reshape(n_beats * len(names), len(LEAD_KEYS)) / fs if n_beats else \
        np.zeros((0, len(LEAD_KEYS)))
    rows = {"beat": np.repeat(np.arange(n_beats, dtype=np.int64), len(names)), "lead": names * n_beats}
    for k, key in enumerate(LEAD_KEYS):
        rows[f"{key}_s"] = values[:, k]
    return pd.DataFrame(rows)


def p_consistency(x: np.ndarray, fs: float, r_peaks: np.ndarray, clean: np.ndarray, median: np.ndarray,
                  r_offset: int, fid: Fiducials) -> float:
    """How alike the clean beats' P segments are: the median over clean beats of the best normalised correlation
    (all leads pooled, lags within +-10 ms) of the beat's P segment (P onset - 10 ms to P offset + 10 ms) with the
    median beat's; NaN without a P wave."""
    if not (np.isfinite(fid.p_on) and np.isfinite(fid.p_off)):
        return NAN
    pad = int(round(0.01 * fs))
    centre = int(round(0.5 * (fid.p_on + fid.p_off)))
    half = int(round(0.5 * (fid.p_off - fid.p_on))) + pad
    tmpl = _segment(median, centre, half)
    peaks = np.asarray(r_peaks, dtype=np.int64)[np.asarray(clean, dtype=bool)]
    if tmpl is None or peaks.size == 0:
        return NAN
    _, corr = _best_lags(x, tmpl, peaks + (centre - r_offset), half, pad)
    corr = corr[corr > -1.0]
    return float(np.median(corr)) if corr.size else NAN


def fiducial_table(r_peaks: np.ndarray, fiducials: list[Fiducials], clean: np.ndarray, fs: float) -> pd.DataFrame:
    """The per-beat table: ``beat, r_peak_s, p_on_s, ..., t_off_s, clean`` in seconds from the strip start."""
    rows = {"beat": np.arange(len(fiducials), dtype=np.int64),
            "r_peak_s": np.asarray(r_peaks, dtype=np.float64) / fs}
    for key in WAVE_KEYS:
        rows[f"{key}_s"] = np.asarray([getattr(f, key) for f in fiducials], dtype=np.float64) / fs
    rows["clean"] = np.asarray(clean, dtype=bool)
    return pd.DataFrame(rows)  # built in BEAT_COLUMNS order (a columns= argument would cost a reindex)
