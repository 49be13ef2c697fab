"""A cardiac-dipole (vectorcardiogram) beat model and its projection onto the 12-lead ECG.

Each beat is a 3-D dipole trajectory built, as in the 3-D extension of McSharry et al.'s ECGSYN
(IEEE Trans Biomed Eng 2003; Sameni et al. 2007), from Gaussian lobes in time, each carrying a 3-D
amplitude vector: two atrial lobes (P), four ventricular depolarisation lobes (septal, anterior-apical,
LV free wall, basal: the QRS loop), an ST lobe and two repolarisation lobes (T). The dipole is in the
Frank/Dower frame: X towards the patient's left, Y inferior (feet), Z posterior (back).

The eight independent leads (I, II, V1-V6) are the Dower projection of the dipole (Dower et al. 1980,
J Electrocardiol 21 Suppl:S182), the forward counterpart of the inverse Dower matrix of Edenbrandt &
Pahlm 1988 (J Electrocardiol 21:361) that maps the 8 leads back onto X, Y, Z (:data:`INVERSE_DOWER`).
III, aVR, aVL and aVF are then derived with Einthoven's and Goldberger's relations, so they hold exactly.

LV mass acts as in people, through the per-participant quantities of :data:`EXPRESSED` (each a mean that
depends on mass plus individual variation, :func:`expression_means`): a larger QRS dipole rotated leftward and
posteriorly, a slightly longer QRS, strain-type ST depression and T inversion, a wider biphasic P; and, beyond
what amplitude/duration/axis measurements summarise, a late R peak in V5-V6, QRS fragmentation, larger and
more posterior terminal forces, a wider spatial QRS-T angle and phenotypes (eccentric, concentric, low-voltage
obese), each behind a :class:`HeartParams` switch. Body habitus scales P, QRS and T together and the chest leads
more than the limb leads, so part of the individual voltage variation is recoverable from the multi-lead
pattern. Voltage falls with age and is lower in women (Rijnbeek et al. 2014); the lobe directions put the
voltage criteria at their published cut-offs in the literature's ranges (Sokolow-Lyon and Cornell sensitivity
15-30%, Peguero-Lo Presti 30-45%, at specificity about 90%; Noubiap et al. 2020 meta-analysis, Peguero et al.
2017). Because every effect is explicit, :mod:`aiecg.synth.oracle` can invert the model exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from aiecg.ecg import STANDARD_LEADS
from aiecg.signal.leads import select_leads

EIGHT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
"""The independent leads the dipole is projected onto, in the row order of :data:`DOWER`."""


def _frozen(array: list[list[float]]) -> np.ndarray:
    out = np.array(array, dtype=np.float64)
    out.flags.writeable = False
    return out


DOWER = _frozen([
    [0.632, -0.235, 0.059],   # I
    [0.235, 1.066, -0.132],   # II
    [-0.515, 0.157, -0.917],  # V1
    [0.044, 0.164, -1.387],   # V2
    [0.882, 0.098, -1.277],   # V3
    [1.213, 0.127, -0.601],   # V4
    [1.125, 0.127, -0.086],   # V5
    [0.831, 0.076, 0.230],    # V6
])
"""Dower's X, Y, Z -> (I, II, V1..V6) transformation, one row per lead (8 x 3)."""

INVERSE_DOWER = _frozen([
    # I      II      V1      V2      V3      V4     V5     V6
    [0.156, -0.010, -0.172, -0.074, 0.122, 0.231, 0.239, 0.194],   # X
    [-0.227, 0.887, 0.057, -0.019, -0.106, -0.022, 0.041, 0.048],  # Y
    [0.022, 0.102, -0.229, -0.310, -0.246, -0.063, 0.055, 0.108],  # Z
])
"""Edenbrandt & Pahlm 1988 inverse Dower matrix: (I, II, V1..V6) -> X, Y, Z (3 x 8), for reconstructing
the vectorcardiogram from a recorded ECG (e.g. an oracle QRS vector in a benchmark)."""

P, QRS, ST, T = 0, 1, 2, 3
"""Wave kind of each lobe."""


def derive_twelve_leads(eight: np.ndarray) -> np.ndarray:
    """Stack the 12 standard leads from I, II, V1-V6 (rows of ``eight``) with Einthoven and Goldberger.

    (:func:`aiecg.signal.leads.select_leads`); order as ``aiecg.ecg.STANDARD_LEADS``.
    """
    return select_leads(eight, EIGHT_LEADS, STANDARD_LEADS)


def project(dipole: np.ndarray, lead_matrix: np.ndarray | None = None) -> np.ndarray:
    """The 12-lead ECG [12, time] of a dipole [3, time] through an 8 x 3 lead matrix (default Dower)."""
    matrix = DOWER if lead_matrix is None else lead_matrix
    return derive_twelve_leads(matrix @ dipole)


@dataclass(frozen=True)
class Morphology:
    """One participant's beat as Gaussian lobes; times in seconds relative to QRS onset.

    Attributes:
        centres, widths: lobe centre and SD (s), shape (K,).
        vectors: lobe amplitude vectors (mV) in X, Y, Z, shape (K, 3).
        kinds: P, QRS, ST or T per lobe; ST and T lobes stretch with the RR interval (QT adaptation).
        qrs_s: QRS duration; pr_s: P onset to QRS onset; p_s: P duration; qt_s: QT at RR = 1 s (QTc).
        r_s: time of the R-wave fiducial after QRS onset.
    """

    centres: np.ndarray
    widths: np.ndarray
    vectors: np.ndarray
    kinds: np.ndarray
    qrs_s: float
    pr_s: float
    p_s: float
    qt_s: float
    r_s: float

    def qt_at(self, rr_s: float | np.ndarray) -> float | np.ndarray:
        """QT interval (s) at RR interval ``rr_s`` by Fridericia's cube-root law."""
        return self.qt_s * np.cbrt(rr_s)

    def timed(self, rr_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lobe centres and widths per beat [beats, K], with ST-T stretched by the preceding RR."""
        stretch = np.where(np.isin(self.kinds, (ST, T))[None, :], np.cbrt(np.asarray(rr_s))[:, None], 1.0)
        return self.centres[None, :] * stretch, self.widths[None, :] * stretch


@dataclass(frozen=True)
class HeartParams:
    """Strength of each LV-mass effect, its switch, and the individual variation (``mass_z``: within-sex SD).

    Every quantity through which mass reaches the ECG is listed in :data:`EXPRESSED`; its mean is
    :func:`expression_means` and its individual variation an independent normal draw of SD
    :func:`expression_sds` (the amplitude block shares the body-habitus factor). The oracle
    (:mod:`aiecg.synth.oracle`) inverts exactly this model.

    Voltage norms: ``voltage_scale`` (men), ``female_voltage`` (women relative to men), ``age_voltage`` (log
    change per year), ``bmi_voltage`` (per kg/m2); set so that the voltage criteria at their published cut-offs
    land in the literature's sensitivity ranges at about 90% specificity (see the module docstring).

    Global effects (as in v1): QRS voltage (``voltage_mass``), posterior and leftward rotation, QRS
    duration, strain, T flattening, left-atrial abnormality, P duration and QTc.

    Switches of the effects that standard amplitude/duration/axis measurements do not summarise:
        intrinsicoid: delayed LV free-wall activation, the R-peak time (intrinsicoid deflection) in V5-V6.
        fragmentation: a notch on the QRS (fragmented QRS) that becomes likely above ~2.5 SD of mass.
        loop_shape: larger and more posterior terminal (basal) QRS forces: the loop's shape and lobe timing.
        qrs_t_angle: the T vector turns away from the QRS vector: a wider spatial QRS-T angle.
        phenotypes: eccentric geometry adds voltage (Brody effect), obesity blunts the voltage response
            (low-voltage LVH), pressure load makes strain and a late R peak likelier (concentric LVH).
        habitus: part of the individual voltage variation is a body-habitus factor that also scales P and
            T and attenuates the chest leads more than the limb leads (so it is recoverable from the
            multi-lead pattern); off, the same variance is lead- and wave-unspecific.
    """

    voltage_scale: float = 0.98
    voltage_mass: float = 0.10
    voltage_sd: float = 0.28
    female_voltage: float = 0.78
    bmi_voltage: float = 0.015
    age_voltage: float = 0.006
    posterior_mass_deg: float = 3.0
    posterior_sd_deg: float = 18.0
    leftward_mass_deg: float = 3.0
    axis_sd_deg: float = 22.0
    qrs_ms: float = 88.0
    qrs_male_ms: float = 6.0
    qrs_mass_ms: float = 1.0
    qrs_sd_ms: float = 8.0
    strain_centre: float = 4.0
    strain_slope: float = 0.8
    strain_sd: float = 4.5
    t_mass: float = 0.03
    t_sd: float = 0.25
    laa_centre: float = 3.5
    laa_slope: float = 0.7
    laa_sd: float = 4.5
    p_mass_ms: float = 1.0
    qt_mass_ms: float = 1.5
    # Effects beyond the global scalars (issue 14), each with its switch.
    intrinsicoid: bool = True
    intrinsicoid_ms: float = 2.5
    intrinsicoid_sd_ms: float = 5.0
    fragmentation: bool = True
    frag_centre: float = 2.5
    frag_slope: float = 0.8
    loop_shape: bool = True
    terminal_gain_mass: float = 0.10
    terminal_gain_sd: float = 0.2
    terminal_rot_mass_deg: float = 2.0
    terminal_rot_sd_deg: float = 8.0
    qrs_t_angle: bool = True
    qrst_mass_deg: float = 5.0
    qrst_sd_deg: float = 10.0
    phenotypes: bool = True
    eccentric_voltage: float = 0.06
    obesity_blunting: float = 0.10
    concentric_strain: float = 0.6
    concentric_delay_ms: float = 1.5
    habitus: bool = True
    habitus_qrs: float = 0.18
    habitus_wave: float = 0.18
    habitus_precordial: float = 0.15
    p_gain_sd: float = 0.15


EXPRESSED: tuple[str, ...] = (
    "log_qrs_gain", "log_t_gain", "log_p_gain", "precordial_log_ratio", "qrs_posterior_deg",
    "qrs_frontal_rotation_deg", "qrs_ms", "strain_logit", "laa_logit", "p_ms", "qtc_ms", "rpt_delay_ms",
    "terminal_log_gain", "terminal_rot_deg", "qrst_widen_deg", "fragmented",
)
"""The per-participant quantities through which the generator expresses LV mass on the ECG (truth columns)."""

CENSORED: dict[str, tuple[float, float]] = {"qrs_ms": (70.0, 150.0), "p_ms": (70.0, 160.0), "qtc_ms": (350.0, 490.0)}
"""Quantities clipped to a physiological range (the oracle treats a value on a bound as censored)."""


def softplus(x: np.ndarray | float) -> np.ndarray:
    """log(1 + e^x), computed stably."""
    x = np.asarray(x, dtype=np.float64)
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """The logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def expression_means(hp: HeartParams, z, u, sex, age, bmi) -> dict[str, np.ndarray]:
    """Mean of every Gaussian expressed quantity given mass ``z``, pressure load ``u`` and covariates.

    Broadcasts over its array arguments. ``u`` is (untreated systolic pressure - 134) / 16 mmHg. The volume
    term of ``log_qrs_gain`` (``eccentric_voltage * volume_z``) is *not* included: the generator adds it
    with the participant's volume and the oracle marginalises it. ``p_ms`` lacks its ``22 * laa`` term and
    ``qtc_ms`` its QRS term (both added from the participant's own values).

    Sources (beyond v1's global effects):
    - intrinsicoid deflection >= 50 ms in V5-V6 in LVH: Sokolow & Lyon 1949 (Am Heart J 37:161); a point of
      Romhilt & Estes 1968 (Am Heart J 75:752); correlated with LV weight at autopsy (Mazzoleni et al. 1964,
      Circulation 30:391).
    - slowed, re-routed activation in hypertrophied myocardium changes the QRS loop beyond its amplitude and
      makes mass and voltage disagree: Bacharova et al. 2011 (J Electrocardiol 44:571), Bacharova 2014
      (J Electrocardiol 47:625).
    - fragmented QRS (an extra notch): Das et al. 2006 (Circulation 113:2495); in LVH a marker of fibrosis.
    - wider spatial QRS-T angle with LV mass and in hypertension: Dilaveris et al. 2001 (J Hum Hypertens
      15:63); review Oehler et al. 2014 (Ann Noninvasive Electrocardiol 19:534).
    - eccentric geometry raises voltage by the intracavitary blood mass (Brody 1956, Circ Res 4:731);
      obesity blunts QRS voltage and hides LVH (Okin et al. 2000, Hypertension 35:13); strain is concentrated
      in pressure-loaded, concentric LVH (Okin et al. 2004, Hypertension 44:48).
    - QRS voltage lower in women and falling with age: Rijnbeek et al. 2014 (J Electrocardiol 47:914),
      Mason et al. 2007 (J Electrocardiol 40:228).
    """
    z, u = np.asarray(z, dtype=np.float64), np.asarray(u, dtype=np.float64)
    sex, age, bmi = np.asarray(sex), np.asarray(age, dtype=np.float64), np.asarray(bmi, dtype=np.float64)
    male = sex == 1
    b = bmi - 26.5
    pheno = 1.0 if hp.phenotypes else 0.0
    blunt = 1.0 / (1.0 + pheno * hp.obesity_blunting * np.maximum(bmi - 30.0, 0.0))
    zero = np.zeros(np.broadcast(z, sex, age, bmi).shape)  # the pressure load broadcasts only where it acts
    return {
        "log_qrs_gain": zero + np.log(hp.voltage_scale) + np.where(male, 0.0, np.log(hp.female_voltage))
        - hp.bmi_voltage * b - hp.age_voltage * (age - 63.0) + hp.voltage_mass * z * blunt,
        "log_t_gain": zero - hp.t_mass * np.maximum(z, -2.0),
        "log_p_gain": zero,
        "precordial_log_ratio": zero,
        "qrs_posterior_deg": zero + hp.posterior_mass_deg * z,
        "qrs_frontal_rotation_deg": zero - hp.leftward_mass_deg * z - 0.35 * (age - 63.0) - 0.8 * b,
        "qrs_ms": zero + hp.qrs_ms + hp.qrs_male_ms * male + hp.qrs_mass_ms * z,
        "strain_logit": zero + hp.strain_slope * (z - hp.strain_centre + pheno * hp.concentric_strain * u),
        "laa_logit": zero + hp.laa_slope * (z - hp.laa_centre),
        "p_ms": zero + 98.0 + hp.p_mass_ms * z,
        "qtc_ms": zero + 405.0 + 8.0 * (~male) + hp.qt_mass_ms * z,
        "rpt_delay_ms": zero + (hp.intrinsicoid_ms * softplus(z - 0.5) + pheno * hp.concentric_delay_ms * u
                                if hp.intrinsicoid else 0.0),
        "terminal_log_gain": zero + (hp.terminal_gain_mass * z if hp.loop_shape else 0.0),
        "terminal_rot_deg": zero + (hp.terminal_rot_mass_deg * z if hp.loop_shape else 0.0),
        "qrst_widen_deg": zero + (hp.qrst_mass_deg * softplus(z - 1.0) if hp.qrs_t_angle else 0.0),
    }


def expression_sds(hp: HeartParams) -> dict[str, float]:
    """SD of the individual (mass-independent) part of every Gaussian expressed quantity.

    For the amplitude block this is the part that is *not* the shared habitus factor: ``log_qrs_gain``
    keeps a total individual SD of ``voltage_sd`` whether or not habitus is switched on.
    """
    hab = hp.habitus_qrs if hp.habitus else 0.0
    return {
        "log_qrs_gain": float(np.sqrt(max(hp.voltage_sd**2 - hab**2, 1e-6))), "log_t_gain": hp.t_sd,
        "log_p_gain": hp.p_gain_sd, "precordial_log_ratio": 0.0, "qrs_posterior_deg": hp.posterior_sd_deg,
        "qrs_frontal_rotation_deg": hp.axis_sd_deg, "qrs_ms": hp.qrs_sd_ms, "strain_logit": hp.strain_sd,
        "laa_logit": hp.laa_sd, "p_ms": 9.0, "qtc_ms": 16.0, "rpt_delay_ms": hp.intrinsicoid_sd_ms,
        "terminal_log_gain": hp.terminal_gain_sd, "terminal_rot_deg": hp.terminal_rot_sd_deg,
        "qrst_widen_deg": hp.qrst_sd_deg,
    }


def habitus_loadings(hp: HeartParams) -> dict[str, float]:
    """Loading of the standard-normal body-habitus factor on the amplitude block (0 when switched off)."""
    on = 1.0 if hp.habitus else 0.0
    return {"log_qrs_gain": -on * hp.habitus_qrs, "log_t_gain": -on * hp.habitus_wave,
            "log_p_gain": -on * hp.habitus_wave, "precordial_log_ratio": -on * hp.habitus_precordial}


def fragmentation_probability(hp: HeartParams, z) -> np.ndarray:
    """P(fragmented QRS | mass): Phi(frag_slope * (z - frag_centre)); a fixed 2% when switched off."""
    from scipy.special import ndtr

    z = np.asarray(z, dtype=np.float64)
    if not hp.fragmentation:
        return np.full(z.shape, 0.02)
    return ndtr(hp.frag_slope * (z - hp.frag_centre))


def draw_expression(hp: HeartParams, rng: np.random.Generator, *, mass_z: float, bp_load: float, volume_z: float,
                    sex: int, age: float, bmi: float) -> dict[str, float]:
    """One participant's expressed quantities (all of :data:`EXPRESSED` but ``precordial_log_ratio``'s
    electrode part, which the recording adds) and the habitus factor ``habitus_z``."""
    means = expression_means(hp, mass_z, bp_load, sex, age, bmi)
    sds = expression_sds(hp)
    load = habitus_loadings(hp)
    names = [k for k in EXPRESSED if k != "fragmented"]
    eps = rng.normal(size=len(names))
    habitus_z, frag_eps = rng.normal(size=2)
    out = {k: float(means[k] + sds[k] * e + load.get(k, 0.0) * habitus_z) for k, e in zip(names, eps)}
    if hp.phenotypes:
        out["log_qrs_gain"] += hp.eccentric_voltage * volume_z
    out["p_ms"] += 22.0 * float(sigmoid(out["laa_logit"]))
    for key in ("qrs_ms", "p_ms"):
        out[key] = float(np.clip(out[key], *CENSORED[key]))
    out["qtc_ms"] = float(np.clip(out["qtc_ms"] + 0.15 * (out["qrs_ms"] - 90.0), *CENSORED["qtc_ms"]))
    from scipy.special import ndtri

    p_frag = float(fragmentation_probability(hp, mass_z))
    out["fragmented"] = float(frag_eps < ndtri(p_frag)) if 0.0 < p_frag < 1.0 else float(p_frag >= 1.0)
    out["habitus_z"] = float(habitus_z)
    return out


def _rot_frontal(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_horizontal(angle: float) -> np.ndarray:
    """Rotate X towards +Z (posterior) by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _rotate_away(v: np.ndarray, ref: np.ndarray, angle: float) -> np.ndarray:
    """Turn ``v`` by ``angle`` radians away from ``ref`` in the plane they span (norm kept, clipped at 180 deg)."""
    r = _unit(ref)
    w = v - float(v @ r) * r
    if np.linalg.norm(w) < 1e-9:
        w = np.cross(r, np.array([0.0, 1.0, 0.0]))
    w = _unit(w)
    current = float(np.arccos(np.clip(_unit(v) @ r, -1.0, 1.0)))
    new = float(np.clip(current + angle, 0.0, np.pi))
    return float(np.linalg.norm(v)) * (np.cos(new) * r + np.sin(new) * w)


def sample_morphology(rng: np.random.Generator, *, mass_z: float, sex: int, age: float, bmi: float,
                      params: HeartParams | None = None, bp_load: float = 0.0,
                      volume_z: float = 0.0) -> tuple[Morphology, dict[str, float]]:
    """Draw one participant's beat morphology and the latent factors behind it.

    Args:
        bp_load: (untreated systolic pressure - 134) / 16; volume_z: standardised indexed LV volume.

    Returns:
        The morphology and a dict of latent truth: every expressed quantity of :data:`EXPRESSED` (but the
        recording's ``precordial_log_ratio``), v1's names (voltage factors, rotations, durations, strain and
        left-atrial-abnormality severities and flags) and ``precordial_factor`` for the recording.
    """
    hp = params or HeartParams()
    male = sex == 1
    lobe_jitter = rng.normal(0.0, 0.12, size=(10, 3))
    lobe_scale = np.exp(rng.normal(0.0, 0.15, size=10))
    notch_depth, notch_place, st_noise = rng.uniform(0.15, 0.3), rng.uniform(0.0, 1.0), rng.normal()
    ex = draw_expression(hp, rng, mass_z=mass_z, bp_load=bp_load, volume_z=volume_z, sex=sex, age=age, bmi=bmi)

    qrs_ms, p_ms, qt_ms = ex["qrs_ms"], ex["p_ms"], ex["qtc_ms"]
    strain, laa = float(sigmoid(ex["strain_logit"])), float(sigmoid(ex["laa_logit"]))
    pr_ms = float(np.clip(158.0 + 0.6 * (age - 63.0) + 0.3 * p_ms - 30.0 + 18.0 * rng.normal(), 110.0, 260.0))
    gain = float(np.exp(ex["log_qrs_gain"]))
    posterior = np.deg2rad(ex["qrs_posterior_deg"])
    frontal = np.deg2rad(ex["qrs_frontal_rotation_deg"])
    rotation = _rot_frontal(frontal) @ _rot_horizontal(posterior)

    d = qrs_ms / 1000.0
    base = np.array([
        [-0.15, 0.05, -0.25],  # septal: left-to-right, anterior (q in I/V6, r in V1)
        [0.55, 0.35, -0.40],   # anterior-apical
        [1.10, 0.12, 0.50],    # LV free wall: the main leftward-posterior force
        [-0.20, -0.25, 0.45],  # basal, terminal
    ])
    base = base * lobe_scale[:4, None] + lobe_jitter[:4] * np.abs(base).mean()
    base[3] = _rot_horizontal(np.deg2rad(ex["terminal_rot_deg"])) @ base[3] * np.exp(ex["terminal_log_gain"])
    qrs_vectors = (rotation @ base.T).T * gain
    delay = ex["rpt_delay_ms"] / 1000.0
    qrs_centres = d * np.array([0.15, 0.38, 0.56, 0.80]) + np.array([0.0, 0.0, 1.0, 0.5]) * delay
    qrs_widths = d * np.array([0.065, 0.095, 0.10, 0.085])
    main = _unit(qrs_vectors[1] + qrs_vectors[2])
    notch_vec = -notch_depth * qrs_vectors[2] * ex["fragmented"]
    notch_centre = qrs_centres[2] + d * (0.08 + 0.08 * notch_place)

    # Repolarisation: broadly concordant with the QRS; the QRS-T angle widens with mass; strain turns it
    # (and an ST lobe) against the main QRS vector.
    body = float((1.0 if male else 0.92) * np.exp(-0.01 * (bmi - 26.5)))
    t_normal = _rot_frontal(0.5 * frontal) @ (np.array([0.36, 0.28, -0.26]) + lobe_jitter[4] * 0.15)
    t_normal = _rotate_away(t_normal, main, np.deg2rad(ex["qrst_widen_deg"]))
    t_normal = t_normal * np.exp(ex["log_t_gain"]) * body
    t_size = float(np.exp(-hp.habitus_wave * ex["habitus_z"])) if hp.habitus else 1.0
    t_vec = (1.0 - strain) * t_normal - strain * 0.32 * body * t_size * main
    st_vec = -strain * 0.10 * body * t_size * main * float(np.exp(0.2 * st_noise))
    qt = qt_ms / 1000.0
    t_centres = np.array([qt - 0.115, qt - 0.060])
    t_widths = np.array([0.050, 0.030])
    t_vectors = np.stack([0.75 * t_vec, 0.55 * t_vec])

    # Atria: right then left atrial lobe; left-atrial abnormality makes the second later, posterior and
    # larger (terminal negative P in V1) and the whole P wider.
    p = p_ms / 1000.0
    pr = pr_ms / 1000.0
    p_right = np.array([0.03, 0.08, -0.04]) + lobe_jitter[5] * 0.02
    p_left = np.array([0.07, 0.05, 0.03 + 0.10 * laa]) + lobe_jitter[6] * 0.02
    p_vectors = np.stack([p_right, p_left]) * body * float(np.exp(ex["log_p_gain"]))
    p_centres = np.array([-pr + 0.33 * p, -pr + (0.62 + 0.08 * laa) * p])
    p_widths = np.array([0.15 * p, (0.16 + 0.03 * laa) * p])

    morph = Morphology(
        centres=np.concatenate([p_centres, qrs_centres, [notch_centre], [d + 0.06], t_centres]),
        widths=np.concatenate([p_widths, qrs_widths, [0.03 * d], [0.045], t_widths]),
        vectors=np.concatenate([p_vectors, qrs_vectors, notch_vec[None, :], st_vec[None, :], t_vectors]),
        kinds=np.array([P, P, QRS, QRS, QRS, QRS, QRS, ST, T, T]),
        qrs_s=d, pr_s=pr, p_s=p, qt_s=qt, r_s=float(qrs_centres[2]),
    )
    attenuation = float(np.exp(expression_means(hp, 0.0, 0.0, sex, age, bmi)["log_qrs_gain"]))
    latent = {
        **{k: v for k, v in ex.items()},
        "qrs_mass_factor": gain / attenuation, "voltage_attenuation": attenuation,
        "qrs_frontal_rotation_deg": ex["qrs_frontal_rotation_deg"], "pr_ms": pr_ms,
        "strain_severity": strain, "strain": int(strain > 0.5), "laa_severity": laa, "laa": int(laa > 0.5),
        "precordial_factor": float(np.exp(habitus_loadings(hp)["precordial_log_ratio"] * ex["habitus_z"])),
    }
    return morph, latent


def pvc_morphology(rng: np.random.Generator, base: Morphology) -> Morphology:
    """A premature ventricular beat: no P, a wide QRS of another direction, discordant T (same lobe count)."""
    direction = _unit(rng.normal(size=3) + np.array([0.0, 0.3, 0.0]))
    magnitude = rng.uniform(1.0, 1.8)
    second = _unit(direction + rng.normal(0.0, 0.5, 3))
    qrs = rng.uniform(0.13, 0.16)
    vectors = np.zeros_like(base.vectors)
    centres = base.centres.copy()
    widths = base.widths.copy()
    qrs_idx = np.flatnonzero(base.kinds == QRS)
    t_idx = np.flatnonzero(base.kinds == T)
    vectors[qrs_idx[1]] = 0.8 * magnitude * direction
    vectors[qrs_idx[2]] = magnitude * second
    centres[qrs_idx[1]], widths[qrs_idx[1]] = 0.35 * qrs, 0.14 * qrs
    centres[qrs_idx[2]], widths[qrs_idx[2]] = 0.62 * qrs, 0.16 * qrs
    vectors[t_idx[0]] = -0.35 * magnitude * _unit(direction + second)
    centres[t_idx[0]], widths[t_idx[0]] = base.qt_s + 0.02 - 0.11, 0.06
    return replace(base, vectors=vectors, centres=centres, widths=widths, qrs_s=qrs, r_s=float(0.62 * qrs))


def render_dipole(t: np.ndarray, onsets: np.ndarray, morphs: list[Morphology], rr: np.ndarray,
                  scale: np.ndarray | None = None) -> np.ndarray:
    """Sum the lobes of every beat on the time grid ``t`` (s): returns the dipole [3, len(t)] in mV.

    Args:
        onsets: QRS onset time of each beat (s).
        morphs: the morphology of each beat (all with the same lobe count).
        rr: the RR interval preceding each beat (s), for QT adaptation.
        scale: per-beat amplitude factor (respiratory modulation), default 1.
    """
    centres = np.empty((len(morphs), morphs[0].centres.size))
    widths = np.empty_like(centres)
    vectors = np.empty((len(morphs),) + morphs[0].vectors.shape)
    for i, (morph, rr_i) in enumerate(zip(morphs, rr)):
        c, w = morph.timed(np.array([rr_i]))
        centres[i], widths[i], vectors[i] = c[0], w[0], morph.vectors
    if scale is not None:
        vectors = vectors * np.asarray(scale)[:, None, None]
    centres = centres + np.asarray(onsets)[:, None]
    dipole = np.zeros((3, t.size))
    fs = 1.0 / (t[1] - t[0]) if t.size > 1 else 1.0
    for b in range(centres.shape[0]):
        for k in range(centres.shape[1]):
            lo = max(int((centres[b, k] - 5.0 * widths[b, k] - t[0]) * fs), 0)
            hi = min(int((centres[b, k] + 5.0 * widths[b, k] - t[0]) * fs) + 2, t.size)
            if hi <= lo or not vectors[b, k].any():
                continue
            g = np.exp(-0.5 * ((t[lo:hi] - centres[b, k]) / widths[b, k]) ** 2)
            dipole[:, lo:hi] += vectors[b, k][:, None] * g[None, :]
    return dipole
