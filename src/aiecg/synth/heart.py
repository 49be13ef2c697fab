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

LV mass acts as in people: a larger QRS dipole rotated leftward and posteriorly, a slightly longer QRS,
strain-type ST depression and T inversion opposite the QRS vector, and a wider, biphasic P
(left-atrial abnormality), each with its own individual variation so no single voltage sum is a good
estimate of mass while several correlated features together are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

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

    III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2; order as ``aiecg.ecg.STANDARD_LEADS``.
    """
    lead_i, lead_ii = eight[0], eight[1]
    limb = np.stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2.0,
                     lead_i - lead_ii / 2.0, lead_ii - lead_i / 2.0])
    return np.concatenate([limb, eight[2:]], axis=0)


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
    """Strength of each LV-mass effect and of individual variation (``mass_z``: within-sex SD units).

    Attributes:
        voltage_mass: log-amplitude of the QRS dipole per SD of indexed mass.
        voltage_sd: individual log-amplitude variation (chest wall, heart position, lead placement).
        female_voltage: QRS amplitude factor in women (breast tissue, smaller heart position effects).
        bmi_voltage: log-amplitude change per kg/m2 of BMI (insulation by adipose tissue).
        posterior_mass_deg, posterior_sd_deg: horizontal-plane rotation of the QRS loop towards posterior.
        leftward_mass_deg, axis_sd_deg: frontal-plane rotation towards the left (superior) and its spread.
        qrs_ms, qrs_male_ms, qrs_mass_ms, qrs_sd_ms: QRS duration model.
        strain_centre, strain_slope, strain_sd: mass_z at which strain is half-developed, steepness, and
            the SD of individual variation on the logit scale (strain is neither necessary nor sufficient).
        t_mass: log T-amplitude change per SD of mass (T flattening before frank strain).
        laa_centre, laa_slope, laa_sd: the same for left-atrial abnormality.
        p_mass_ms, qt_mass_ms: P-wave and QTc lengthening per SD of mass.
    """

    voltage_mass: float = 0.075
    voltage_sd: float = 0.28
    female_voltage: float = 0.86
    bmi_voltage: float = 0.015
    posterior_mass_deg: float = 3.0
    posterior_sd_deg: float = 12.0
    leftward_mass_deg: float = 3.0
    axis_sd_deg: float = 22.0
    qrs_ms: float = 88.0
    qrs_male_ms: float = 6.0
    qrs_mass_ms: float = 2.0
    qrs_sd_ms: float = 8.0
    strain_centre: float = 4.0
    strain_slope: float = 0.8
    strain_sd: float = 2.0
    t_mass: float = 0.04
    laa_centre: float = 3.5
    laa_slope: float = 0.7
    laa_sd: float = 2.0
    p_mass_ms: float = 1.5
    qt_mass_ms: float = 2.0


def _rot_frontal(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_horizontal(angle: float) -> np.ndarray:
    """Rotate X towards +Z (posterior) by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def sample_morphology(rng: np.random.Generator, *, mass_z: float, sex: int, age: float, bmi: float,
                      params: HeartParams | None = None) -> tuple[Morphology, dict[str, float]]:
    """Draw one participant's beat morphology and the latent factors behind it.

    Returns:
        The morphology and a dict of latent truth (voltage factors, rotations, durations, strain and
        left-atrial-abnormality severities and flags).
    """
    hp = params or HeartParams()
    male = sex == 1
    # Individual variation first, in a fixed order, so that every participant draws the same numbers.
    z_volt, z_post, z_axis, z_qrs, z_strain, z_laa, z_p, z_pr, z_qt = rng.normal(size=9)
    lobe_jitter = rng.normal(0.0, 0.12, size=(9, 3))
    lobe_scale = np.exp(rng.normal(0.0, 0.15, size=9))
    t_scale = np.exp(rng.normal(0.0, 0.25))

    qrs_ms = float(np.clip(hp.qrs_ms + hp.qrs_male_ms * male + hp.qrs_mass_ms * mass_z + hp.qrs_sd_ms * z_qrs,
                           70.0, 150.0))
    strain = _sigmoid(hp.strain_slope * (mass_z - hp.strain_centre) + hp.strain_sd * z_strain)
    laa = _sigmoid(hp.laa_slope * (mass_z - hp.laa_centre) + hp.laa_sd * z_laa)
    p_ms = float(np.clip(98.0 + hp.p_mass_ms * mass_z + 22.0 * laa + 9.0 * z_p, 70.0, 160.0))
    pr_ms = float(np.clip(158.0 + 0.6 * (age - 63.0) + 0.3 * p_ms - 30.0 + 18.0 * z_pr, 110.0, 260.0))
    qt_ms = float(np.clip(405.0 + 8.0 * (not male) + 0.15 * (qrs_ms - 90.0) + hp.qt_mass_ms * mass_z + 16.0 * z_qt,
                          350.0, 490.0))

    attenuation = float((1.0 if male else hp.female_voltage) * np.exp(-hp.bmi_voltage * (bmi - 26.5)))
    individual = float(np.exp(hp.voltage_sd * z_volt))
    mass_factor = float(np.exp(hp.voltage_mass * mass_z))
    posterior = np.deg2rad(hp.posterior_mass_deg * mass_z + hp.posterior_sd_deg * z_post)
    frontal = np.deg2rad(-hp.leftward_mass_deg * mass_z - 0.35 * (age - 63.0) - 0.8 * (bmi - 26.5)
                         + hp.axis_sd_deg * z_axis)
    rotation = _rot_frontal(frontal) @ _rot_horizontal(posterior)

    d = qrs_ms / 1000.0
    qrs_vectors = np.array([
        [-0.15, 0.05, -0.25],  # septal: left-to-right, anterior (q in I/V6, r in V1)
        [0.55, 0.35, -0.40],   # anterior-apical
        [1.15, 0.55, 0.55],    # LV free wall: the main leftward-posterior force
        [-0.30, -0.25, 0.35],  # basal, terminal
    ])
    qrs_vectors = (qrs_vectors * lobe_scale[:4, None] + lobe_jitter[:4] * np.abs(qrs_vectors).mean())
    qrs_vectors = (rotation @ qrs_vectors.T).T * (mass_factor * attenuation * individual)
    qrs_centres = d * np.array([0.15, 0.38, 0.56, 0.80])
    qrs_widths = d * np.array([0.065, 0.095, 0.10, 0.085])
    main = _unit(qrs_vectors[1] + qrs_vectors[2])

    # Repolarisation: broadly concordant with the QRS in the frontal plane and anterior; strain turns it
    # (and an ST lobe) against the main QRS vector.
    body = float((1.0 if male else 0.92) * np.exp(-0.01 * (bmi - 26.5)))
    t_normal = _rot_frontal(0.5 * frontal) @ (np.array([0.36, 0.28, -0.26]) + lobe_jitter[4] * 0.15)
    t_normal = t_normal * t_scale * np.exp(-hp.t_mass * max(mass_z, -2.0)) * body
    t_vec = (1.0 - strain) * t_normal - strain * 0.32 * body * main
    st_vec = -strain * 0.10 * body * main * float(np.exp(0.2 * rng.normal()))
    qt = qt_ms / 1000.0
    t_centres = np.array([qt - 0.115, qt - 0.060])
    t_widths = np.array([0.050, 0.030])
    t_vectors = np.stack([0.75 * t_vec, 0.55 * t_vec])

    # Atria: right then left atrial lobe; left-atrial abnormality makes the second later, posterior and
    # larger (terminal negative P in V1) and the whole P wider.
    p = p_ms / 1000.0
    pr = pr_ms / 1000.0
    p_right = np.array([0.03, 0.08, -0.04]) * lobe_scale[5] + lobe_jitter[5] * 0.02
    p_left = np.array([0.07, 0.05, 0.03 + 0.10 * laa]) * lobe_scale[6] + lobe_jitter[6] * 0.02
    p_vectors = np.stack([p_right, p_left]) * body
    p_centres = np.array([-pr + 0.33 * p, -pr + (0.62 + 0.08 * laa) * p])
    p_widths = np.array([0.15 * p, (0.16 + 0.03 * laa) * p])

    morph = Morphology(
        centres=np.concatenate([p_centres, qrs_centres, [d + 0.06], t_centres]),
        widths=np.concatenate([p_widths, qrs_widths, [0.045], t_widths]),
        vectors=np.concatenate([p_vectors, qrs_vectors, st_vec[None, :], t_vectors]),
        kinds=np.array([P, P, QRS, QRS, QRS, QRS, ST, T, T]),
        qrs_s=d, pr_s=pr, p_s=p, qt_s=qt, r_s=float(qrs_centres[2]),
    )
    latent = {
        "qrs_mass_factor": mass_factor, "voltage_attenuation": attenuation, "voltage_individual": individual,
        "qrs_posterior_deg": float(np.rad2deg(posterior)), "qrs_frontal_rotation_deg": float(np.rad2deg(frontal)),
        "qrs_ms": qrs_ms, "p_ms": p_ms, "pr_ms": pr_ms, "qtc_ms": qt_ms,
        "strain_severity": strain, "strain": int(strain > 0.5), "laa_severity": laa, "laa": int(laa > 0.5),
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
