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


LIMB_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF")


def romhilt_estes(m: Mapping[str, float]) -> CriterionResult:
    """Romhilt-Estes point score, as far as median-beat measurements allow; LVH at >= 5 points.

    Romhilt DW, Estes EH. A point-score system for the ECG diagnosis of left ventricular hypertrophy. Am Heart J
    1968;75:752-758. Points: voltage 3 (largest limb-lead R or S >= 2.0 mV, or S in V1/V2 >= 3.0 mV, or R in
    V5/V6 >= 3.0 mV); lateral strain 3 (ST depression >= 0.05 mV at J with an inverted T in V5 or V6, beside a
    dominant R; digitalis use is unknown, so the full 3); left atrial involvement 3 (a negative P in V1 of at least
    0.1 mV; its 40 ms duration is not measured); left axis deviation 2 (axis <= -30 degrees); QRS >= 90 ms 1.
    The intrinsicoid deflection (1 point) is not measured, so this partial score can under-call by one point.
    """
    needed = [f"{w}_{lead}" for lead in STANDARD_LEADS for w in ("R", "S")] + ["qrs_duration_ms"]
    if any(math.isnan(_get(m, k)) for k in needed):
        return CriterionResult("romhilt_estes", math.nan, 5.0, None)
    limb = max(max(_get(m, f"R_{lead}"), _get(m, f"S_{lead}")) for lead in LIMB_LEADS)
    voltage = (limb >= 2.0 or max(_get(m, "S_V1"), _get(m, "S_V2")) >= 3.0
               or max(_get(m, "R_V5"), _get(m, "R_V6")) >= 3.0)
    strain = any(
        _get(m, f"J_{lead}") <= -0.05 and _get(m, f"T_{lead}") < 0 and _get(m, f"R_{lead}") > _get(m, f"S_{lead}")
        for lead in ("V5", "V6")
    )
    atrial = _get(m, "P_V1") <= -0.1
    axis = _get(m, "qrs_axis_deg") <= -30
    points = 3 * voltage + 3 * strain + 3 * atrial + 2 * axis + 1 * (_get(m, "qrs_duration_ms") >= 90)
    return _result("romhilt_estes", float(points), 5.0, strict=False)


Q_WAVE_GROUPS = {"inferior": ("II", "III", "aVF"), "lateral": ("I", "aVL", "V5", "V6"),
                 "anterior": ("V1", "V2", "V3", "V4")}


def pathological_q_waves(m: Mapping[str, float]) -> CriterionResult:
    """Pathological Q waves by depth: Q at least 0.1 mV deep and at least a quarter of the R wave, in two or more
    leads of one contiguous group (inferior, lateral, anterior). Score: the most such leads in one group.

    After the Minnesota code's depth rule (Prineas RJ, Crow RS, Zhang ZM. The Minnesota Code Manual of
    Electrocardiographic Findings, 2nd ed., Springer 2010); the Q duration (>= 40 ms) is not measured. Not an
    LVH criterion: a marker of previous infarction, reported beside them.
    """
    counts = []
    for leads in Q_WAVE_GROUPS.values():
        values = [(_get(m, f"Q_{lead}"), _get(m, f"R_{lead}")) for lead in leads]
        if any(math.isnan(q) or math.isnan(r) for q, r in values):
            return CriterionResult("pathological_q_waves", math.nan, 2.0, None)
        counts.append(sum(q >= 0.1 and q >= 0.25 * r for q, r in values))
    return _result("pathological_q_waves", float(max(counts)), 2.0, strict=False)


def all_criteria(m: Mapping[str, float], sex: str) -> dict[str, CriterionResult]:
    """All LVH criteria of this module, by name (pathological Q waves are not an LVH criterion)."""
    results = [sokolow_lyon(m), cornell_voltage(m, sex), cornell_product(m, sex), peguero_lo_presti(m, sex),
               romhilt_estes(m)]
    return {r.name: r for r in results}
