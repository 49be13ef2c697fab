"""Each LV-mass effect beyond the global scalars shows in a measurement of the noise-free beat, and switching
it off (a HeartParams field) removes the measurement's correlation with mass."""

from dataclasses import replace

import numpy as np
import pytest

from aiecg.synth.heart import DOWER, QRS, HeartParams, T, render_dipole, sample_morphology

N = 160
GRID = np.arange(-0.4, 0.7, 0.002)


def _cohort(hp, seed=0, bmi=None, volume=None):
    """N participants with mass spread over [-1.5, 4.5] SD: mass, dipole [N, 3, time], morphologies, latents."""
    pick = np.random.default_rng([seed, 99])
    z = pick.uniform(-1.5, 4.5, N)
    bmis = pick.uniform(22, 40, N) if bmi is None else np.full(N, bmi)
    vols = pick.normal(0, 1, N) if volume is None else volume
    dips, morphs, lats = [], [], []
    for i in range(N):
        morph, lat = sample_morphology(np.random.default_rng([seed, i]), mass_z=float(z[i]), sex=1, age=62.0,
                                       bmi=float(bmis[i]), params=hp, volume_z=float(vols[i]))
        dips.append(render_dipole(GRID, np.array([0.0]), [morph], np.array([1.0])))
        morphs.append(morph)
        lats.append(lat)
    return z, np.stack(dips), morphs, lats, bmis, vols


def _wave(morph, kind):
    keep = morph.kinds == kind
    g = np.exp(-0.5 * ((GRID[None, :] - morph.centres[keep, None]) / morph.widths[keep, None]) ** 2)
    return morph.vectors[keep].T @ g


def _r(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def r_peak_time_v6(z, dips, morphs):
    """Intrinsicoid deflection: R-peak time in V6 after QRS onset, as a share of the QRS duration."""
    v6 = np.einsum("j,njt->nt", DOWER[7], dips)
    inside = (GRID >= 0) & (GRID <= 0.16)
    return np.array([GRID[inside][np.argmax(v6[i, inside])] / m.qrs_s for i, m in enumerate(morphs)])


def notch_sharpness(z, dips, morphs):
    """Fragmentation: the largest curvature of the QRS in any lead relative to its amplitude."""
    out = []
    for m in morphs:
        leads = DOWER @ _wave(m, QRS)
        curv = np.abs(np.diff(leads, 2, axis=1)).max(axis=1) / np.abs(leads).max(axis=1)
        out.append(curv.max())
    return np.array(out)


def terminal_force(z, dips, morphs):
    """Loop shape: magnitude of the QRS vector at 85% of the QRS relative to its peak."""
    out = []
    for m in morphs:
        mag = np.linalg.norm(_wave(m, QRS), axis=0)
        out.append(mag[np.argmin(np.abs(GRID - 0.85 * m.qrs_s))] / mag.max())
    return np.array(out)


def qrs_t_angle(z, dips, morphs):
    """Spatial QRS-T angle (degrees) between the integrated QRS and T vectors."""
    out = []
    for m in morphs:
        q, t = _wave(m, QRS).sum(axis=1), _wave(m, T).sum(axis=1)
        out.append(np.degrees(np.arccos(q @ t / np.linalg.norm(q) / np.linalg.norm(t))))
    return np.array(out)


# Each effect, its measurement, and the other effects that move the same measurement (held off in both arms).
CASES = {
    "intrinsicoid": (r_peak_time_v6, {"loop_shape": False, "fragmentation": False, "posterior_mass_deg": 0.0,
                                      "leftward_mass_deg": 0.0}),
    "fragmentation": (notch_sharpness, {}),
    "loop_shape": (terminal_force, {"intrinsicoid": False, "fragmentation": False}),
    "qrs_t_angle": (qrs_t_angle, {"strain_centre": 50.0, "posterior_mass_deg": 0.0, "leftward_mass_deg": 0.0,
                                  "loop_shape": False}),
}


@pytest.mark.parametrize("effect", list(CASES))
def test_mass_effect_shows_and_its_switch_removes_it(effect):
    measure, hold = CASES[effect]
    on = replace(HeartParams(), **hold)
    off = replace(on, **{effect: False})
    z, dips, morphs, *_ = _cohort(on)
    r_on = _r(measure(z, dips, morphs), z)
    z, dips, morphs, *_ = _cohort(off)
    r_off = _r(measure(z, dips, morphs), z)
    assert r_on > 0.2, (effect, r_on)  # N = 160: a null correlation has SD ~0.08
    assert abs(r_off) < 0.1, (effect, r_off)


def _qrs_peak(dips):
    return np.log(np.linalg.norm(dips, axis=1).max(axis=1))


def test_eccentric_phenotype_adds_volume_dependent_voltage():
    vols = np.random.default_rng(7).normal(0, 1.5, N)
    for pheno, lo, hi in ((True, 0.15, 1.0), (False, -0.12, 0.12)):
        z, dips, *_ = _cohort(replace(HeartParams(), phenotypes=pheno), volume=vols, bmi=27.0)
        volt = _qrs_peak(dips)
        resid = volt - np.polyval(np.polyfit(z, volt, 1), z)  # voltage beyond what mass gives
        assert lo < _r(resid, vols) < hi, (pheno, _r(resid, vols))


def test_obesity_blunts_the_voltage_response_to_mass():
    slopes = {}
    for pheno in (True, False):
        for bmi in (25.0, 42.0):
            z, dips, *_ = _cohort(replace(HeartParams(voltage_mass=0.2), phenotypes=pheno), bmi=bmi, volume=np.zeros(N))
            slopes[pheno, bmi] = np.polyfit(z, _qrs_peak(dips), 1)[0]
    assert slopes[True, 42.0] < 0.6 * slopes[True, 25.0]
    assert slopes[False, 42.0] == pytest.approx(slopes[False, 25.0], rel=0.25)


def test_habitus_is_recoverable_from_the_wave_and_lead_pattern():
    """Body habitus scales P, QRS and T together and the chest leads more than the limb leads: a P wave that is
    small for its QRS-independent reasons predicts a small QRS (on), and nothing of the kind when switched off."""
    for habitus in (True, False):
        z, dips, morphs, lats, *_ = _cohort(HeartParams(habitus=habitus))
        volt = _qrs_peak(dips)
        resid = volt - np.polyval(np.polyfit(z, volt, 1), z)
        p_size = np.log([np.abs(_wave(m, 0)).max() for m in morphs])
        chest = np.log([lat["precordial_factor"] for lat in lats])
        if habitus:
            assert _r(resid, p_size) > 0.3 and _r(chest, p_size) > 0.3
        else:
            assert abs(_r(resid, p_size)) < 0.12 and np.all(chest == 0.0)
