"""Classic ECG criteria for left-ventricular hypertrophy, from a measurement dict.

Input: the flat dict of ``aiecg.signal.measurements.compute_measurements`` (or any mapping with the same keys):
``R_{lead}`` in mV, ``S_{lead}`` as positive depths in mV, ``qrs_duration_ms``. A missing or NaN value gives a
NaN score and ``positive=None`` (no call), never a silent negative.

Each criterion is a :class:`Criterion` that carries its own label, cut-off direction and strictness; adding one
is one function and one :func:`register_criterion` call in this file (comparison tables, ``aiecg measure`` and
the report pick it up from the registry).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiecg.conventions import parse_sex
from aiecg.ecg import STANDARD_LEADS


@dataclass(frozen=True)
class CriterionResult:
    """One criterion applied to one ECG.

    Attributes:
        name: the criterion.
        score: its value (mV, or mV*ms for products); NaN when an input is missing.
        threshold: the cut-off applied (sex-specific where the criterion is).
        positive: True when LVH is called, False when not, None when unknown (an input is missing).
        completeness: share of the criterion's inputs (or, for a point score, of its points) that could be
            evaluated; below 1 a call is made only when the missing part cannot change it.
    """

    name: str
    score: float
    threshold: float
    positive: bool | None
    completeness: float = 1.0


def _sex(sex: str) -> str:
    try:
        return parse_sex(sex)
    except ValueError:
        raise ValueError(f"sex must be 'male' or 'female' for a sex-specific criterion, got {sex!r}") from None


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


CORNELL_FEMALE_ADJUSTMENT_MV = 0.6
"""Default female correction of the Cornell product: +0.6 mV, as in the LIFE study (Okin et al. 2004); Molloy et
al. 1992 added 0.8 mV."""


def cornell_product(m: Mapping[str, float], sex: str,
                    female_adjustment_mv: float = CORNELL_FEMALE_ADJUSTMENT_MV) -> CriterionResult:
    """Cornell voltage-duration product: (RaVL + SV3, + a female adjustment) x QRS duration; LVH at > 244 mV*ms.

    Molloy TJ, Okin PM, Devereux RB, Kligfield P. Electrocardiographic detection of left ventricular
    hypertrophy by the simple QRS voltage-duration product. J Am Coll Cardiol 1992;20:1180-1186 (8 mm, 0.8 mV,
    added in women); the 2440 mm*ms cut-off and the 6 mm (0.6 mV) female adjustment of the LIFE study (Okin PM et
    al., JAMA 2004;292:2343-2349) are the default. ``female_adjustment_mv`` chooses (0.6 LIFE, 0.8 Molloy).
    """
    voltage = _get(m, "R_aVL") + _get(m, "S_V3") + (female_adjustment_mv if _sex(sex) == "female" else 0.0)
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
ROMHILT_ESTES_MAX_POINTS = 13


def romhilt_estes(m: Mapping[str, float]) -> CriterionResult:
    """Romhilt-Estes point score, as far as median-beat measurements allow; LVH at >= 5 points.

    Romhilt DW, Estes EH. A point-score system for the ECG diagnosis of left ventricular hypertrophy. Am Heart J
    1968;75:752-758. Points: voltage 3 (largest limb-lead R or S >= 2.0 mV, or S in V1/V2 >= 3.0 mV, or R in
    V5/V6 >= 3.0 mV); lateral strain 3 (ST depression >= 0.05 mV at J with an inverted T in V5 or V6, beside a
    dominant R; digitalis use is unknown, so the full 3); left atrial involvement 3 (a negative P in V1 of at least
    0.1 mV; its 40 ms duration is not measured); left axis deviation 2 (QRS axis from -30 to -90 degrees); QRS
    >= 90 ms 1; intrinsicoid deflection in V5/V6 >= 50 ms 1 (when ``r_peak_time_V5``/``_V6`` are measured).

    A component whose inputs are missing is unknown, never a silent zero: the score counts the known points,
    ``completeness`` is the share of the 13 points that could be evaluated, and LVH is called only when the known
    points reach 5 (positive) or cannot reach 5 even with every unknown point (negative); otherwise unknown.
    """
    def value(key: str) -> float:
        return _get(m, key)

    def known(*keys: str) -> bool:
        return all(not math.isnan(value(k)) for k in keys)

    components: list[tuple[int, bool | None]] = []
    voltage_keys = [f"{w}_{lead}" for lead in LIMB_LEADS for w in ("R", "S")] + ["S_V1", "S_V2", "R_V5", "R_V6"]
    voltage_values = [value(k) for k in voltage_keys]
    limb = [v for v in voltage_values[:12] if not math.isnan(v)]
    hit = (any(v >= 2.0 for v in limb) or any(value(k) >= 3.0 for k in ("S_V1", "S_V2", "R_V5", "R_V6")
                                               if not math.isnan(value(k))))
    components.append((3, True if hit else (False if known(*voltage_keys) else None)))
    strain_hits, strain_known = [], True
    for lead in ("V5", "V6"):
        keys = (f"J_{lead}", f"T_{lead}", f"R_{lead}", f"S_{lead}")
        if not known(*keys):
            strain_known = False
            continue
        strain_hits.append(value(f"J_{lead}") <= -0.05 and value(f"T_{lead}") < 0
                           and value(f"R_{lead}") > value(f"S_{lead}"))
    components.append((3, True if any(strain_hits) else (False if strain_known else None)))
    components.append((3, (value("P_V1") <= -0.1) if known("P_V1") else None))
    axis = value("qrs_axis_deg")
    components.append((2, (-90.0 <= axis <= -30.0) if known("qrs_axis_deg") else None))
    components.append((1, (value("qrs_duration_ms") >= 90) if known("qrs_duration_ms") else None))
    rpt = [value(k) for k in ("r_peak_time_V5", "r_peak_time_V6") if not math.isnan(value(k))]
    components.append((1, (max(rpt) >= 50) if rpt else None))
    points = float(sum(w for w, hit in components if hit))
    unknown = sum(w for w, hit in components if hit is None)
    completeness = 1.0 - unknown / ROMHILT_ESTES_MAX_POINTS
    positive = True if points >= 5 else (False if points + unknown < 5 else None)
    return CriterionResult("romhilt_estes", points, 5.0, positive, completeness)


Q_WAVE_GROUPS = {"inferior": ("II", "III", "aVF"), "lateral": ("I", "aVL", "V5", "V6"),
                 "anterior": ("V1", "V2", "V3", "V4")}


def pathological_q_waves(m: Mapping[str, float]) -> CriterionResult:
    """Pathological Q waves by depth: Q at least 0.1 mV deep and at least a quarter of the R wave, in two or more
    leads of one contiguous group (inferior, lateral, anterior). Score: the most such leads in one group.

    After the Minnesota code's depth rule (Prineas RJ, Crow RS, Zhang ZM. The Minnesota Code Manual of
    Electrocardiographic Findings, 2nd ed., Springer 2010); the Q duration (>= 40 ms) is not measured. Not an
    LVH criterion (a marker of previous infarction): registered with ``lvh=False``, so it is reported beside the
    LVH criteria (``all_criteria(..., lvh_only=False)``, ``aiecg measure``) but not scored as one in comparisons.
    """
    counts = []
    for leads in Q_WAVE_GROUPS.values():
        values = [(_get(m, f"Q_{lead}"), _get(m, f"R_{lead}")) for lead in leads]
        if any(math.isnan(q) or math.isnan(r) for q, r in values):
            return CriterionResult("pathological_q_waves", math.nan, 2.0, None, 0.0)
        counts.append(sum(q >= 0.1 and q >= 0.25 * r for q, r in values))
    return _result("pathological_q_waves", float(max(counts)), 2.0, strict=False)


@dataclass(frozen=True)
class Criterion:
    """A registered ECG criterion: how to compute it and how to read its score.

    Attributes:
        name: key in tables and measurement columns (``cornell_voltage``).
        label: the name people read (``Cornell voltage``).
        compute: ``fn(measurements, sex, **options) -> CriterionResult``.
        strict: LVH is ``score > cut-off`` (True) or ``score >= cut-off`` (False).
        higher_is_lvh: the score rises with LVH (every classic voltage criterion).
        lvh: an LVH criterion (False for findings reported beside them, such as pathological Q waves).
        options: the criterion's options with their defaults (documented in its function).
    """

    name: str
    label: str
    compute: Callable[..., CriterionResult]
    strict: bool
    higher_is_lvh: bool = True
    lvh: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, m: Mapping[str, float], sex: str, **options: Any) -> CriterionResult:
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"criterion {self.name} has no options {sorted(unknown)}; it has {sorted(self.options)}")
        return self.compute(m, sex, **{**self.options, **options})

    def margin(self, result: CriterionResult) -> float:
        """A signed score that is >= 0 exactly when LVH is called, whatever the cut-off's sex or strictness, so
        one threshold (0) serves every participant of a comparison."""
        sign = 1.0 if self.higher_is_lvh else -1.0
        return sign * (result.score - result.threshold) - (1e-9 if self.strict else 0.0)


ECG_CRITERIA: dict[str, Criterion] = {}
"""The registered ECG criteria by name (:func:`register_criterion`); those with ``lvh`` set are LVH criteria."""


def register_criterion(criterion: Criterion) -> Criterion:
    if criterion.name in ECG_CRITERIA:
        raise ValueError(f"criterion {criterion.name!r} is already registered")
    ECG_CRITERIA[criterion.name] = criterion
    return criterion


register_criterion(Criterion("sokolow_lyon", "Sokolow-Lyon", lambda m, sex: sokolow_lyon(m), strict=False))
register_criterion(Criterion("cornell_voltage", "Cornell voltage", cornell_voltage, strict=True))
register_criterion(Criterion("cornell_product", "Cornell product", cornell_product, strict=True,
                             options={"female_adjustment_mv": CORNELL_FEMALE_ADJUSTMENT_MV}))
register_criterion(Criterion("peguero_lo_presti", "Peguero-Lo Presti", peguero_lo_presti, strict=False))
register_criterion(Criterion("romhilt_estes", "Romhilt-Estes", lambda m, sex: romhilt_estes(m), strict=False))
register_criterion(Criterion("pathological_q_waves", "Pathological Q waves", lambda m, sex: pathological_q_waves(m),
                             strict=False, lvh=False))


def all_criteria(m: Mapping[str, float], sex: str, options: Mapping[str, Mapping[str, Any]] | None = None,
                 lvh_only: bool = True) -> dict[str, CriterionResult]:
    """Every registered criterion applied to one ECG, by name (``lvh_only``: LVH criteria only).

    Args:
        options: per-criterion options, e.g. ``{"cornell_product": {"female_adjustment_mv": 0.8}}``.
    """
    options = options or {}
    return {name: criterion(m, sex, **options.get(name, {})) for name, criterion in ECG_CRITERIA.items()
            if criterion.lvh or not lvh_only}
