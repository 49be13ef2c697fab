"""Signal processing on numpy arrays: filters, lead algebra, beats and the median beat, QC, delineation,
measurements, criteria.

Pure functions on float arrays [lead, time] in millivolts; no torch, no I/O. One record goes through
``aiecg.signal.record.analyse_signal``: ``preprocess`` -> ``extract_beats`` (lead QC, R peaks, median) ->
clipping on the raw strip -> ``delineate`` (global P/QRS/T) and per-beat fiducials -> ``compute_measurements``
-> plausibility. ``aiecg prepare`` and ``aiecg measure`` both use it.
"""

from aiecg.signal.beats import BeatConfig, BeatSet, assess_quality, detect_r_peaks, extract_beats
from aiecg.signal.criteria import (
    CriterionResult,
    all_criteria,
    cornell_product,
    cornell_voltage,
    peguero_lo_presti,
    sokolow_lyon,
)
from aiecg.signal.delineation import DelineationConfig, Fiducials, delineate
from aiecg.signal.filters import FilterConfig, preprocess
from aiecg.signal.leads import derive_limb_leads, select_leads
from aiecg.signal.measurements import compute_measurements, qrs_bounds
from aiecg.signal.quality import QualityConfig
from aiecg.signal.record import RecordAnalysis, analyse_ecg, analyse_signal, beat_table

__all__ = [
    "BeatConfig", "BeatSet", "CriterionResult", "DelineationConfig", "FilterConfig", "Fiducials", "QualityConfig",
    "RecordAnalysis", "all_criteria", "analyse_ecg", "analyse_signal", "assess_quality", "beat_table",
    "compute_measurements", "cornell_product", "cornell_voltage", "delineate", "derive_limb_leads",
    "detect_r_peaks", "extract_beats", "peguero_lo_presti", "preprocess", "qrs_bounds", "select_leads",
    "sokolow_lyon",
]
