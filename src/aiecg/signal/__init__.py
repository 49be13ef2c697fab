"""Signal processing on numpy arrays: filters, lead algebra, beats and the median beat, measurements, criteria.

Pure functions on float arrays [lead, time] in millivolts; no torch, no I/O. The ``prepare`` step chains
``preprocess`` -> ``extract_beats`` -> ``compute_measurements``.
"""

from aiecg.signal.beats import BeatConfig, BeatSet, QualityConfig, assess_quality, detect_r_peaks, extract_beats
from aiecg.signal.criteria import (
    CriterionResult,
    all_criteria,
    cornell_product,
    cornell_voltage,
    peguero_lo_presti,
    sokolow_lyon,
)
from aiecg.signal.filters import FilterConfig, preprocess
from aiecg.signal.leads import derive_limb_leads, select_leads
from aiecg.signal.measurements import compute_measurements, qrs_bounds

__all__ = [
    "BeatConfig", "BeatSet", "CriterionResult", "FilterConfig", "QualityConfig", "all_criteria", "assess_quality",
    "compute_measurements", "cornell_product", "cornell_voltage", "derive_limb_leads", "detect_r_peaks",
    "extract_beats", "peguero_lo_presti", "preprocess", "qrs_bounds", "select_leads", "sokolow_lyon",
]
