"""One record, end to end: raw 12-lead strip -> QC, beats, median, global and per-beat fiducials, measurements.

This is the single per-record path of both ``aiecg prepare`` (the store) and ``aiecg measure`` (CSV tables),
so the two always agree:

1. Einthoven check on the leads as stored (a warning in the QC notes).
2. The 12 standard leads (limb leads derived from I and II where missing), filtered and resampled.
3. Beats, median beat and lead QC (``extract_beats``); clipping on the raw strip (``clipped_leads``); pacing
   spikes on the raw strip (``pacing_spikes``): when they lead the beats, they are blanked and step 3 runs again,
   and the record is flagged ``paced`` (measured, not rejected).
4. The delineation median (wider than the stored one) and its global (IEC 60601-2-25) fiducials; a P wave that
   differs from beat to beat (atrial fibrillation) or lasts over 200 ms is dropped, with the reason in the notes;
   a paced QRS starts no earlier than its stimulus's blanked end.
5. Measurements on the median (bad leads NaN), then the plausibility checks (``quality.plausibility`` on the
   measurements; ``plausibility.check_plausibility``: amplitude (units) and polarity (inverted signal)).
6. Every beat's fiducials (``RecordAnalysis.table``) and every beat's per-lead fiducials
   (``RecordAnalysis.lead_table``), delineated on first use: ``aiecg prepare`` and ``aiecg predict`` never read
   them, ``aiecg measure`` only with ``--beats`` / ``--per-lead``.

``beat_table(ecg)`` is the short way to the per-beat fiducials of an ``ECG``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.signal.beats import BeatConfig, BeatSet, extract_beats
from aiecg.signal.delineation import (
    BEAT_COLUMNS,
    LEAD_COLUMNS,
    DelineationConfig,
    Fiducials,
    beat_fiducials,
    beat_lead_fiducials,
    delineate,
    fiducial_table,
    lead_fiducials,
    lead_table,
    p_consistency,
    wide_median,
)
from aiecg.signal.fastops import median
from aiecg.signal.filters import FilterConfig, preprocess
from aiecg.signal.leads import select_leads
from aiecg.signal.measurements import compute_measurements
from aiecg.signal.plausibility import check_plausibility
from aiecg.signal.quality import (
    PACING_MIN_FS,
    PACING_NOT_CHECKED,
    SPIKE_BLANK_S,
    blank_spikes,
    clipped_leads,
    einthoven_note,
    pacing_chamber,
    pacing_spikes,
    pacing_timings,
    plausibility,
    record_verdict,
)

INDEX_KEYS = ("p_onset", "p_offset", "qrs_onset", "qrs_offset", "t_peak", "t_end")


@dataclass(frozen=True)
class RecordAnalysis:
    """Everything measured on one record.

    Attributes:
        beats: the beats, the stored median beat and the QC verdict (``qc_ok``, ``qc_reason``, ``bad_leads``,
            ``qc_notes``), after clipping and plausibility checks.
        fiducials: global fiducials of the median, in samples of ``beats.median`` (R at ``BeatConfig.r_offset``).
        measurements: ``compute_measurements`` of the median (empty without a clean beat); index keys refer
            to ``beats.median``.
        fs: sampling rate of the filtered strip (Hz).
        per_beat: delineates every beat when first asked for (``table``, ``lead_table``); None for empty tables.
    """

    beats: BeatSet
    fiducials: Fiducials
    measurements: dict[str, float] = field(default_factory=dict)
    fs: float = 500.0
    per_beat: BeatDelineation | None = field(default=None, repr=False, compare=False)

    @property
    def filtered(self) -> np.ndarray:
        """The filtered 12-lead strip [lead, time] at ``fs`` that the beats were cut from (pacing spikes blanked),
        the source of a rhythm strip (:mod:`aiecg.signal.strip`)."""
        if self.per_beat is None:
            raise ValueError("this analysis kept no filtered signal")
        return self.per_beat.x

    @cached_property
    def table(self) -> pd.DataFrame:
        """The per-beat table of global (IEC 60601-2-25) fiducials (``aiecg.signal.delineation.BEAT_COLUMNS``),
        seconds from the strip start; delineated on first access (the global measurements do not need it)."""
        if self.per_beat is None:
            return pd.DataFrame(columns=list(BEAT_COLUMNS))
        return self.per_beat.table()

    @cached_property
    def lead_table(self) -> pd.DataFrame:
        """The long per-lead table (``aiecg.signal.delineation.LEAD_COLUMNS``): every beat's P, QRS and T onset,
        peak and offset in each of the 12 leads (NaN in a bad lead or where the lead shows no such wave)."""
        if self.per_beat is None:
            return pd.DataFrame(columns=list(LEAD_COLUMNS))
        return self.per_beat.lead_table()


@dataclass(frozen=True, eq=False)
class BeatDelineation:
    """What the per-beat delineation of one record needs; it runs on first use and once for both tables.

    Attributes:
        x: the filtered strip [12 leads, time]; good: the usable leads' rows; peaks, clean: the beats;
        median: the delineation median [12 leads, window] with R at ``r0``; fid: its global fiducials.
    """

    x: np.ndarray
    fs: float
    good: tuple[int, ...]
    peaks: np.ndarray
    clean: np.ndarray
    median: np.ndarray
    r0: int
    fid: Fiducials
    cfg: DelineationConfig

    @cached_property
    def fiducials(self) -> list[Fiducials]:
        good = list(self.good)
        return beat_fiducials(self.x[good], self.fs, self.peaks, self.clean, self.median[good], self.r0, self.fid,
                              self.cfg)

    def table(self) -> pd.DataFrame:
        return fiducial_table(self.peaks, self.fiducials, self.clean, self.fs)

    def lead_table(self) -> pd.DataFrame:
        median_leads = lead_fiducials(self.median, self.fs, self.fid, self.cfg)
        per_lead = beat_lead_fiducials(self.x, self.fs, self.peaks, self.clean, self.fiducials, self.r0, self.fid,
                                       median_leads, self.cfg)
        bad = np.setdiff1d(np.arange(self.x.shape[0]), self.good)
        for leads in per_lead:
            leads[bad] = np.nan
        return lead_table(per_lead, STANDARD_LEADS, self.fs)


def analyse_signal(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    filters: FilterConfig | None = None,
    beats: BeatConfig | None = None,
    delineation: DelineationConfig | None = None,
) -> RecordAnalysis:
    """Analyse a raw strip [lead, time] in mV (any leads from which the 12 standard ones follow).

    Raises:
        KeyError: leads are missing and cannot be derived from I and II.
    """
    filters = filters or FilterConfig()
    beats = beats or BeatConfig()
    dcfg = delineation or DelineationConfig()
    qcfg = beats.quality
    raw = np.asarray(select_leads(signal, leads, STANDARD_LEADS), dtype=np.float64)  # converted once for all checks
    notes = [einthoven_note(signal, [str(n) for n in leads], qcfg)]
    if fs < PACING_MIN_FS:  # "not paced" would be a claim nobody checked: say so in the row
        notes.append(f"{PACING_NOT_CHECKED}: recorded at {fs:g} Hz, pacing spikes are looked for at "
                     f"{PACING_MIN_FS:g} Hz or faster")
    x = preprocess(raw, fs, filters)
    tfs = filters.target_fs
    bs = extract_beats(x, tfs, STANDARD_LEADS, beats)
    usable = [i for i, n in enumerate(STANDARD_LEADS) if n not in bs.bad_leads]  # no stimulus in a noisy lead
    spikes = pacing_spikes(raw[usable], fs, qcfg) if usable else np.zeros(0, np.int64)
    timings = pacing_timings(spikes / fs, bs.r_peaks / tfs, qcfg) if spikes.size else []
    if timings:  # measure the heart's QRS, not the stimulus: blank the beat-locked spikes and start again
        lag = spikes[:, None] / fs - bs.r_peaks[None, :] / tfs
        locked = (np.abs(lag[:, :, None] - np.asarray(timings)[None, None, :]) <= 0.006).any(axis=(1, 2))
        x = preprocess(blank_spikes(raw, fs, spikes[locked]), fs, filters)
        bs = extract_beats(x, tfs, STANDARD_LEADS, beats)
        timings = pacing_timings(spikes[locked] / fs, bs.r_peaks / tfs, qcfg) or timings

    bad = dict(bs.bad_leads)
    for lead, why in clipped_leads(raw, fs, STANDARD_LEADS, bs.r_peaks / tfs, qcfg).items():
        bad.setdefault(lead, why)
    bad = {n: bad[n] for n in STANDARD_LEADS if n in bad}
    ok, reason, lead_notes = record_verdict(bad)
    if ok and not bs.qc_ok:  # beat-level failure (too few clean beats, no beats)
        ok, reason = False, bs.qc_reason
    good = [i for i, n in enumerate(STANDARD_LEADS) if n not in bad] or list(range(len(STANDARD_LEADS)))

    peaks, clean = bs.r_peaks, bs.clean
    rr = float(median(np.diff(peaks))) / tfs if peaks.size >= 2 else None
    full, r0 = wide_median(x, peaks, clean, tfs, dcfg)
    med = full[good]
    fid = delineate(med, tfs, r0, rr, dcfg) if clean.any() else Fiducials()
    why_no_p = _no_p_reason(x[good], tfs, peaks, clean, med, r0, fid, dcfg)
    if why_no_p:
        fid = dataclasses.replace(fid, p_on=np.nan, p_peak=np.nan, p_off=np.nan)
        notes.append(f"no P wave: {why_no_p}")
    paced = ""
    if timings:
        paced = pacing_chamber(timings, (fid.qrs_on - r0) / tfs, (fid.p_on - r0) / tfs)
        # a paced QRS starts after its stimulus and the stimulus's blanked artefact, never before
        starts = [r0 + (t + SPIKE_BLANK_S) * tfs for t in timings if t >= (fid.qrs_on - r0) / tfs - 0.05]
        if starts and np.isfinite(fid.qrs_on):
            fid = dataclasses.replace(fid, qrs_on=max(fid.qrs_on, max(starts)))
        notes.append(f"paced ({paced}): pacing spikes {', '.join(f'{-1000 * t:.0f}' for t in timings)} ms "
                     "before the R peak, blanked before measuring")
    per_beat = BeatDelineation(x, tfs, tuple(good), peaks, clean, full, r0, fid, dcfg)

    measurements: dict[str, float] = {}
    shift = float(r0 - beats.r_offset)
    if clean.any():
        measurements = compute_measurements(full, STANDARD_LEADS, tfs, r0, bs.heart_rate, fid, list(bad), dcfg)
        for key in INDEX_KEYS:
            measurements[key] = measurements[key] - shift
        if ok:
            why = plausibility(measurements, int(peaks.size), float(peaks[-1] - peaks[0]) / tfs, qcfg)
            if why:
                ok, reason = False, why
        physiology = check_plausibility(full, STANDARD_LEADS, tfs, r0, fid.qrs_on, fid.qrs_off, list(bad),
                                        p_on=fid.p_on, p_off=fid.p_off)  # units and polarity errors
        if ok and physiology.reject:
            ok, reason = False, physiology.reject
        notes += list(physiology.notes)
    notes = tuple(n for n in notes + lead_notes if n)
    bs = dataclasses.replace(bs, qc_ok=ok, qc_reason=reason, bad_leads=bad, qc_notes=notes, paced=paced)
    return RecordAnalysis(beats=bs, fiducials=fid.shifted(-shift), measurements=measurements, fs=tfs,
                          per_beat=per_beat)


def _no_p_reason(x: np.ndarray, fs: float, peaks: np.ndarray, clean: np.ndarray, median: np.ndarray, r0: int,
                 fid: Fiducials, cfg: DelineationConfig) -> str:
    """'' when the median beat has a plausible P wave, else why the record reports none (then its P is dropped):
    none found, too long to be one, or unlike from beat to beat; irregular RR intervals add 'atrial
    fibrillation?'."""
    rr = np.diff(peaks) / fs
    irregular = rr.size > 2 and float(np.median(np.abs(np.diff(rr)))) > 0.1 * float(np.median(rr))
    tail = "; with irregular RR intervals: atrial fibrillation?" if irregular else ""
    if not (np.isfinite(fid.p_on) and np.isfinite(fid.p_off)):
        return f"none found between the previous T wave and the QRS{tail}" if np.isfinite(fid.qrs_on) else ""
    if (fid.p_off - fid.p_on) / fs > cfg.p_max_s:
        return (f"the wave found lasts {1000 * (fid.p_off - fid.p_on) / fs:.0f} ms, longer than any P wave "
                f"({1000 * cfg.p_max_s:.0f} ms){tail}")
    consistency = p_consistency(x, fs, peaks, clean, median, r0, fid)
    if np.isfinite(consistency) and consistency < cfg.p_consistency:
        return (f"atrial activity differs from beat to beat (P-segment correlation {consistency:.2f} < "
                f"{cfg.p_consistency:g}){tail}")
    return ""


def analyse_ecg(ecg: ECG, filters: FilterConfig | None = None, beats: BeatConfig | None = None,
                delineation: DelineationConfig | None = None) -> RecordAnalysis:
    """``analyse_signal`` of an ``ECG`` (as ``aiecg.io.read_ecg`` returns it)."""
    return analyse_signal(ecg.signal, ecg.fs, ecg.leads, filters, beats, delineation)


def beat_table(ecg: ECG, filters: FilterConfig | None = None, beats: BeatConfig | None = None) -> pd.DataFrame:
    """Per-beat global (12-lead) fiducials of a recording, one row per detected beat.

    Columns ``beat, r_peak_s, p_on_s, p_peak_s, p_off_s, qrs_on_s, qrs_off_s, t_peak_s, t_off_s, clean``:
    times in seconds from the first sample of the recording as stored, NaN where a wave is absent (no P wave
    in atrial fibrillation or before a premature ventricular beat; a boundary outside the strip). ``clean``
    marks the beats that made the median beat.

    Example::

        from aiecg.io import read_ecg
        from aiecg.signal.record import beat_table
        beats = beat_table(read_ecg("ecg.xml"))
        qrs_ms = 1000 * (beats.qrs_off_s - beats.qrs_on_s)
    """
    return analyse_ecg(ecg, filters, beats).table
