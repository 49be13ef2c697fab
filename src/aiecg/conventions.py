"""Shared vocabulary, each defined once: how sex is spelled and decoded, how a category level is compared,
voltage units, the SNOMED-CT code of LVH."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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


def level_key(value: Any) -> str:
    """A category's canonical text, so that 1, 1.0, "1" and numpy integers name the same level."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    try:
        return level_key(float(text))
    except ValueError:
        return text


def decode_sex(value: Any, male: Any = None, female: Any = None) -> float:
    """THE sex decoder of tables and ECG headers: 1.0 male, 0.0 female, NaN unknown (missing or unrecognised).

    The source's own codes come first (``male``/``female``: the cohort YAML's ``sex: {male: 1, female: 0}``, or
    a clinical table's 1/0), compared as category levels (:func:`level_key`: 1, 1.0 and "1" are one code); the
    words files and tables use (M/F, Male/Female, man/woman) are understood whatever the codes are.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    key = level_key(value)
    if male is not None and key == level_key(male):
        return 1.0
    if female is not None and key == level_key(female):
        return 0.0
    return {"male": 1.0, "female": 0.0}.get(sex_or_unknown(value), math.nan)


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
