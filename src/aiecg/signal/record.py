"""One record, end to end: raw 12-lead strip -> QC, beats, median, global and per-beat fiducials, measurements.

This is the single per-record path of both ``aiecg prepare`` (the store) and ``aiecg measure`` (CSV tables),
so the two always agree:

1. Einthoven check on the leads as stored (a warning in the QC notes).
2. The 12 standard leads (limb leads derived from I and II where missing), filtered and resampled.
3. Beats, median beat and lead QC (``extract_beats``); clipping on the raw strip (``clipped_leads``).
4. The delineation median (wider than the stored one) and its global fiducials.
5. Measurements on the median (bad leads NaN), then the plausibility checks (``quality.plausibility`` on the
   measurements; ``plausibility.check_plausibility``: amplitude (units) and polarity (inverted signal)).
6. Every beat's fiducials (``RecordAnalysis.table``), delineated on first use: ``aiecg prepare`` and
   ``aiecg predict`` never read them, ``aiecg measure`` only with ``--beats``.

``beat_table(ecg)`` is the short way to the per-beat fiducials of an ``ECG``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np
import pandas as pd

from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.signal.beats import BeatConfig, BeatSet, extract_beats
from aiecg.signal.delineation import (
    BEAT_COLUMNS,
    DelineationConfig,
    Fiducials,
    beat_fiducials,
    delineate,
    wide_median,
)
from aiecg.signal.delineation import beat_table as _beat_table
from aiecg.signal.fastops import median
from aiecg.signal.filters import FilterConfig, preprocess
from aiecg.signal.leads import select_leads
from aiecg.signal.measurements import compute_measurements
from aiecg.signal.plausibility import check_plausibility
from aiecg.signal.quality import clipped_leads, einthoven_note, plausibility, record_verdict

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
        per_beat: computes the per-beat table (``table``) when first asked for; None for an empty table.
    """

    beats: BeatSet
    fiducials: Fiducials
    measurements: dict[str, float] = field(default_factory=dict)
    fs: float = 500.0
    per_beat: Callable[[], pd.DataFrame] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def table(self) -> pd.DataFrame:
        """The per-beat table (``aiecg.signal.delineation.BEAT_COLUMNS``), seconds from the strip start;
        delineated on first access (the global measurements do not need it)."""
        if self.per_beat is None:
            return pd.DataFrame(columns=list(BEAT_COLUMNS))
        return self.per_beat()


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
    raw = select_leads(signal, leads, STANDARD_LEADS)
    notes = [einthoven_note(signal, [str(n) for n in leads], qcfg)]
    x = preprocess(raw, fs, filters)
    tfs = filters.target_fs
    bs = extract_beats(x, tfs, STANDARD_LEADS, beats)

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
    per_beat = partial(_per_beat_table, x[good], tfs, peaks, clean, med, r0, fid, dcfg)

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
    bs = dataclasses.replace(bs, qc_ok=ok, qc_reason=reason, bad_leads=bad, qc_notes=notes)
    return RecordAnalysis(beats=bs, fiducials=fid.shifted(-shift), measurements=measurements, fs=tfs,
                          per_beat=per_beat)


def _per_beat_table(x: np.ndarray, fs: float, peaks: np.ndarray, clean: np.ndarray, median: np.ndarray, r0: int,
                    fid: Fiducials, cfg: DelineationConfig) -> pd.DataFrame:
    """Every beat's fiducials (``beat_fiducials``) as the per-beat table."""
    return _beat_table(peaks, beat_fiducials(x, fs, peaks, clean, median, r0, fid, cfg), clean, fs)


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
