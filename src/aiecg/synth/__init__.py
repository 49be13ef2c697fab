"""The physiology-grounded synthetic UK-Biobank-like cohort (the embedded default data set).

``generate_cohort(out_dir, SynthConfig(n=..., seed=...))`` writes CardioSoft XML (or WFDB) ECGs, the cohort
table with the reference code's 16 clinical variables and CMR targets, truth tables (with the built-in oracle
and per-beat true fiducials) and ``cohort.yaml``.
"""

from aiecg.synth.cohort import (
    COHORT_COLUMNS,
    EXTERNAL_SHIFT,
    DomainShift,
    SynthConfig,
    SynthResult,
    cohort_mapping,
    generate_cohort,
)
from aiecg.synth.heart import DOWER, EXPRESSED, INVERSE_DOWER, HeartParams
from aiecg.synth.oracle import ORACLE_COLUMNS, oracle_posterior
from aiecg.synth.population import REMODELLING_CLASSES, LVReference, sample_participants, select_cohort
from aiecg.synth.record import FIDUCIAL_COLUMNS, SynthRecord, synthesise_record

__all__ = [
    "COHORT_COLUMNS", "DOWER", "EXPRESSED", "EXTERNAL_SHIFT", "FIDUCIAL_COLUMNS", "INVERSE_DOWER", "ORACLE_COLUMNS",
    "REMODELLING_CLASSES", "DomainShift", "HeartParams", "LVReference", "SynthConfig", "SynthRecord", "SynthResult",
    "cohort_mapping", "generate_cohort", "oracle_posterior", "sample_participants", "select_cohort",
    "synthesise_record",
]
