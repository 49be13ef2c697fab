"""Shared vocabulary, each defined once: how sex is spelled, voltage units, the SNOMED-CT code of LVH."""

from __future__ import annotations

from typing import Any

SNOMED_LVH = "164873001"
"""SNOMED-CT concept 'Left ventricular hypertrophy' (the LVH label of the PhysioNet/CinC challenge headers)."""

_SEX_WORDS = {
    "male": "male", "m": "male", "man": "male", "men": "male",
    "female": "female", "f": "female", "woman": "female", "women": "female",
}


def sex_or_unknown(value: Any) -> str:
    """'male', 'female' or 'unknown' from the spellings ECG files and tables use (M/F, Male/Female, man/woman).

    Numeric codes are not guessed here: tables say theirs in the cohort YAML (``sex: {male: 1, female: 0}``).
    """
    key = str(value if value is not None else "").strip().lower()
    return _SEX_WORDS.get(key, "unknown")


def parse_sex(value: Any) -> str:
    """'male' or 'female'; ValueError for anything else."""
    sex = sex_or_unknown(value)
    if sex == "unknown":
        raise ValueError(f"expected 'male' or 'female', got {value!r}")
    return sex


VOLT_UNITS = {
    "mv": 1.0, "millivolt": 1.0, "millivolts": 1.0,
    "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3,
    "v": 1e3, "volt": 1e3, "volts": 1e3,
    "nv": 1e-6, "nanovolt": 1e-6, "nanovolts": 1e-6,
}
"""Factor from each voltage unit (lower-case spelling) to millivolts, aiecg's unit."""


def millivolts_per(unit: str) -> float | None:
    """The factor that turns values in ``unit`` into millivolts, or None for a unit that is not a voltage."""
    return VOLT_UNITS.get(str(unit).strip().lower())
