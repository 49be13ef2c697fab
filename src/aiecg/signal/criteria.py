"""Classic ECG criteria for left-ventricular hypertrophy, from a measurement dict.

Input: the flat dict of ``aiecg.signal.measurements.compute_measurements`` (or any mapping with the same keys):
``R_{lead}`` in mV, ``S_{lead}`` as positive depths in mV, ``qrs_duration_ms``. A missing or NaN value gives a
NaN score and ``positive=None`` (no call), never a silent negative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from aiecg.ecg import STANDARD_LEADS

_MALE = {"male", "m", "man", "men"}
_FEMALE = {"female", "f", "woman", "women"}


@dataclass(frozen=True)
class CriterionResult:
    """One criterion applied to one ECG.

    Attributes:
        name: the criterion.
        score: its value (mV, or mV*ms for products); NaN when an input is missing.
        threshold: the cut-off applied (sex-specific where the criterion is).
        positive: True when LVH is called, False when not, None when the score is NaN.
    """

    name: str
    score: float
    threshold: float
    positive: bool | None


def _sex(sex: str) -> str:
    key = str(sex).strip().lower()
    if key in _MALE:
        return "male"
    if key in _FEMALE:
        return "female"
    raise ValueError(f"sex must be 'male' or 'female' for a sex-specific criterion, got {sex!r}")


def _get(m: Mapping[str, float], key: str) -> float:
    value = m.get(key, math.nan)
    return float(value) if value is not None else math.nan


def _result(name: str, score: float, threshold: float, strict: bool) -> CriterionResult:
    if math.isnan(score):
        return CriterionResult(name, score, threshold, None)
    return CriterionResult(name, score, threshold, score > threshold if strict else score >= threshold)


def sokolow_lyon(m: Mapping[str, float]) -> CriterionResult:
    """Sokolow-Lyon voltage: S in V1 + the larger R of V5 and V6; LVH at >= 3.5 mV.

    Sokolow M, Lyon TP. The ventricular complex in left ventricular hypertrophy as obtained by unipolar
    precordial and limb leads. Am Heart J 1949;37:161-186.
    """
    score = _get(m, "S_V1") + max(_get(m, "R_V5"), _get(m, "R_V6"))
    if any(math.isnan(_get(m, k)) for k in ("S_V1", "R_V5", "R_V6")):
        score = math.nan
    return _result("sokolow_lyon", score, 3.5, strict=False)


def cornell_voltage(m: Mapping[str, float], sex: str) -> CriterionResult:
    """Cornell voltage: R in aVL + S in V3; LVH at > 2.8 mV in men, > 2.0 mV in women.

    Casale PN, Devereux RB, Alonso DR, Campo E, Kligfield P. Improved sex-specific criteria of left
    ventricular hypertrophy for clinical and computer interpretation of electrocardiograms: validation with
    autopsy findings. Circulation 1987;75:565-572 (first proposed in Casale et al., J Am Coll Cardiol
    1985;6:572-580).
    """
    threshold = 2.8 if _sex(sex) == "male" else 2.0
    return _result("cornell_voltage", _get(m, "R_aVL") + _get(m, "S_V3"), threshold, strict=True)


def cornell_product(m: Mapping[str, float], sex: str) -> CriterionResult:
    """Cornell voltage-duration product: (RaVL + SV3, + 0.6 mV in women) x QRS duration; LVH at > 244 mV*ms.

    Molloy TJ, Okin PM, Devereux RB, Kligfield P. Electrocardiographic detection of left ventricular
    hypertrophy by the simple QRS voltage-duration product. J Am Coll Cardiol 1992;20:1180-1186; with the
    6 mm (0.6 mV) female adjustment and the 2440 mm*ms cut-off used in the LIFE study (Okin PM et al.,
    JAMA 2004;292:2343-2349).
    """
    voltage = _get(m, "R_aVL") + _get(m, "S_V3") + (0.6 if _sex(sex) == "female" else 0.0)
    return _result("cornell_product", voltage * _get(m, "qrs_duration_ms"), 244.0, strict=True)


def peguero_lo_presti(m: Mapping[str, float], sex: str) -> CriterionResult:
    """Peguero-Lo Presti: the deepest S in any lead + S in V4; LVH at >= 2.8 mV in men, >= 2.3 mV in women.

    Peguero JG, Lo Presti S, Perez J, Issa O, Brenes JC, Tolentino A. Electrocardiographic criteria for the
    diagnosis of left ventricular hypertrophy. J Am Coll Cardiol 2017;69:1694-1703. The deepest S is taken
    over the 12 standard leads present in ``m``; if it is in V4 itself, SV4 counts twice, as in the paper.
    """
    threshold = 2.8 if _sex(sex) == "male" else 2.3
    depths = [_get(m, f"S_{lead}") for lead in STANDARD_LEADS if f"S_{lead}" in m]
    depths = [d for d in depths if not math.isnan(d)]
    deepest = max(depths) if depths else math.nan
    return _result("peguero_lo_presti", deepest + _get(m, "S_V4"), threshold, strict=False)


def all_criteria(m: Mapping[str, float], sex: str) -> dict[str, CriterionResult]:
    """All criteria of this module, by name."""
    results = [sokolow_lyon(m), cornell_voltage(m, sex), cornell_product(m, sex), peguero_lo_presti(m, sex)]
    return {r.name: r for r in results}
