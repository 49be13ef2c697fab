"""The built-in oracle: the generator's own posterior of indexed LV mass and of LVH for every participant.

The generator is a chain: clinical variables and a latent untreated systolic pressure ``s`` -> standardised
indexed mass ``z`` (:func:`aiecg.synth.population.sample_participants`) -> the per-participant quantities
through which mass reaches the ECG (:data:`aiecg.synth.heart.EXPRESSED`) -> the recording. Mass is one
number, so its posterior is computed exactly (up to the grid) by quadrature on a grid over ``z`` and ``s``:

    p(z, s | data) ∝ p(s | age, BMI, sex, shift) p(SBP, DBP, hypertension | s)     (treatment summed out)
                     x N(z; risk(s) mean, 1 - w^2) x w_enrich(LVH(z))              (the cohort's sampling)
                     x p(expressed ECG quantities | z, s, age, BMI, sex)

What it conditions on, exactly:
- the cohort table's clinical variables (sex, age, BMI, SBP, DBP, hypertension, diabetes, smoking, high
  cholesterol) through the population model; cholesterol values, alcohol, ethnicity and heart rate carry no
  mass information in the generator;
- every quantity of :data:`~aiecg.synth.heart.EXPRESSED`, as written in the truth table: the noise-free
  parameters of the participant's beat (QRS/T/P gains, the chest-to-limb gain ratio, rotations, durations,
  strain and atrial logits, R-peak delay, terminal-force gain and rotation, QRS-T widening, fragmentation).
  The amplitude block is one joint Gaussian (shared body-habitus factor; the volume term of the eccentric
  phenotype is marginalised over the participant's unknown indexed volume); the rest are independent
  Gaussians given ``z`` and ``s`` (censored at their clip bounds), fragmentation a probit;
- the cohort's LVH enrichment and population shift.

It does *not* see the recording (device noise, lobe-level jitter, electrode tilt, filters), so it is an
upper bound on what any method can reach from the ECG and these clinical variables.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import log_ndtr, logsumexp

from aiecg.synth.heart import (
    CENSORED,
    EXPRESSED,
    HeartParams,
    expression_means,
    expression_sds,
    fragmentation_probability,
    habitus_loadings,
    sigmoid,
)
from aiecg.synth.population import (
    MALE,
    RISK_CENTRE,
    RISK_SD,
    RISK_WEIGHT,
    VOLUME_NOISE_SD,
    LVReference,
    sample_participants,
    volume_z_mean,
)
from aiecg.synth.record import electrode_ratio_sd

Z_GRID = np.linspace(-5.0, 8.0, 261)
"""Grid over standardised indexed mass (step 0.05 SD)."""
S_OFFSETS = np.arange(-30.0, 42.0, 1.5)
"""Grid over untreated systolic pressure, relative to the observed SBP (treatment lowers it by 11 mmHg)."""
ORACLE_COLUMNS: tuple[str, ...] = ("oracle_ilvm", "oracle_lvh_prob", "oracle_ilvm_sd",
                                   "oracle_clinical_ilvm", "oracle_clinical_lvh_prob")
"""Truth-table columns: posterior mean and SD of indexed mass and P(LVH), with the ECG and clinically only."""
AMPLITUDE_BLOCK = ("log_qrs_gain", "log_t_gain", "log_p_gain", "precordial_log_ratio")


@lru_cache(maxsize=16)
def natural_prevalence(population_shift: float, ref: LVReference | None = None, n: int = 400_000) -> float:
    """LVH prevalence of the unenriched population at a shift (Monte Carlo, fixed seed)."""
    people = sample_participants(n, np.random.default_rng([20260, 14]), population_shift, ref)
    return float(people["lvh"].mean())


def _log_normal(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


def _censored(x, mean, sd, lo, hi):
    """Gaussian log-density, or log tail probability when ``x`` sits on a clip bound."""
    dens = _log_normal(x, mean, sd)
    dens = np.broadcast_to(dens, np.broadcast(x, mean).shape).copy()
    mean = np.broadcast_to(mean, dens.shape)
    for on_bound, tail in ((np.isclose(x, lo), lambda m: log_ndtr((lo - m) / sd)),
                           (np.isclose(x, hi), lambda m: log_ndtr((m - hi) / sd))):
        rows = np.flatnonzero(np.broadcast_to(on_bound, dens.shape[:1] + (1,) * (dens.ndim - 1)).reshape(-1))
        if rows.size:
            dens[rows] = tail(mean[rows])
    return dens


def _clinical_loglik(s, c, shift: float):
    """log p(s | age, BMI, sex) + log p(SBP, DBP, hypertension | s), treatment summed out; s: [B, S]."""
    a, b, male = c["age"] - 63.0, c["bmi"] - 26.5, (c["sex"] == MALE).astype(float)
    prior = _log_normal(s, 134.0 + 0.55 * a + 0.9 * b + 4.0 * male + 5.0 * shift, 15.0)
    logit = -1.1 + 0.07 * (s - 134.0) + 0.04 * a + 0.08 * b
    hyp = c["hypertension"]
    log_h = np.where(hyp == 1, -np.logaddexp(0.0, -logit), -np.logaddexp(0.0, logit))
    terms = []
    for treated, p_t in ((0, np.where(hyp == 1, 0.25, 1.0)), (1, np.where(hyp == 1, 0.75, 0.0))):
        sbp_ll = _log_normal(c["sbp"], s - 11.0 * treated, 6.0)
        dbp_mean = 79.0 + 0.4 * (s - 134.0) - 0.15 * a + 0.3 * b + 2.0 * male - 6.0 * treated
        bound = c["sbp"] - 20.0
        dbp_ll = np.where(c["dbp"] >= bound - 1e-9, log_ndtr((dbp_mean - bound) / 6.0),
                          _log_normal(c["dbp"], dbp_mean, 6.0))
        with np.errstate(divide="ignore"):
            terms.append(np.log(p_t) + sbp_ll + dbp_ll)
    return prior + log_h + np.logaddexp(terms[0], terms[1])


def _ecg_loglik(hp: HeartParams, ex: dict[str, np.ndarray], z, s, c, electrode_sd: float = 1.0):
    """log p(expressed quantities | z, s, covariates) on the grid; z: [1, 1, Z], s: [B, S, 1]."""
    u = (s - 134.0) / 16.0
    cov = {k: v[:, None, None] for k, v in c.items()}
    means = expression_means(hp, z, u, cov["sex"], cov["age"], cov["bmi"])
    sds = expression_sds(hp)
    e = {k: v[:, None, None] for k, v in ex.items()}
    # Amplitude block: a joint Gaussian with the shared habitus loading and the marginalised volume term.
    load = habitus_loadings(hp)
    diag = np.array([sds[k] ** 2 for k in AMPLITUDE_BLOCK])
    diag[3] = electrode_ratio_sd(electrode_sd) ** 2
    mean_block = [means[k] for k in AMPLITUDE_BLOCK]
    if hp.phenotypes:
        diag[0] += (hp.eccentric_voltage * VOLUME_NOISE_SD) ** 2
        mean_block[0] = mean_block[0] + hp.eccentric_voltage * volume_z_mean(z, u, cov["age"], cov["sex"])
    lam = np.array([load[k] for k in AMPLITUDE_BLOCK])
    precision = np.linalg.inv(np.diag(diag) + np.outer(lam, lam))
    resid = [e[k] - m for k, m in zip(AMPLITUDE_BLOCK, mean_block)]
    ll = 0.0
    for i in range(4):
        for j in range(4):
            ll = ll - 0.5 * precision[i, j] * resid[i] * resid[j]
    for k in EXPRESSED:
        if k in AMPLITUDE_BLOCK or k == "fragmented":
            continue
        mean = means[k]
        if k == "p_ms":
            mean = mean + 22.0 * sigmoid(e["laa_logit"])
        elif k == "qtc_ms":
            mean = mean + 0.15 * (e["qrs_ms"] - 90.0)
        if k in CENSORED:
            ll = ll + _censored(e[k], mean, sds[k], *CENSORED[k])
        else:
            ll = ll + _log_normal(e[k], mean, sds[k])
    p_frag = np.clip(fragmentation_probability(hp, z), 1e-12, 1.0 - 1e-12)
    return ll + np.where(e["fragmented"] > 0.5, np.log(p_frag), np.log1p(-p_frag))


def oracle_posterior(table: pd.DataFrame, truth: pd.DataFrame, hp: HeartParams | None = None,
                     population_shift: float = 0.0, lvh_prevalence: float | None = None,
                     ref: LVReference | None = None, chunk: int = 128, electrode_sd: float = 1.0) -> pd.DataFrame:
    """The oracle columns (:data:`ORACLE_COLUMNS`) for every participant, with ``eid``.

    Args:
        table: the cohort table (``eid`` and the clinical columns).
        truth: the truth table rows of the same participants (``eid`` and :data:`EXPRESSED`).
        hp: the heart parameters the cohort was generated with.
        population_shift, lvh_prevalence: the cohort's sampling (``None`` = natural prevalence).
        electrode_sd: the recording's electrode placement error (the chest-lead gain part of the expressed
            ``precordial_log_ratio``), as in :class:`aiecg.synth.record.RecordParams`.
    """
    hp = hp or HeartParams()
    ref = ref or LVReference()
    merged = table[["eid", "sex", "age", "bmi", "sbp", "dbp", "hypertension", "diabetes", "smoking",
                    "high_cholesterol"]].merge(truth[["eid", *EXPRESSED]], on="eid", how="left")
    z = Z_GRID[None, None, :]
    if lvh_prevalence is None:
        log_w = np.zeros(2)
    else:
        p_nat = natural_prevalence(population_shift, ref)
        log_w = np.log([(1.0 - lvh_prevalence) / (1.0 - p_nat), lvh_prevalence / p_nat])
    out = []
    for start in range(0, len(merged), chunk):
        part = merged.iloc[start:start + chunk]
        c = {k: part[k].to_numpy(dtype=np.float64) for k in ("sex", "age", "bmi", "sbp", "dbp", "hypertension",
                                                              "diabetes", "smoking", "high_cholesterol")}
        s = c["sbp"][:, None] + S_OFFSETS[None, :]
        clin = _clinical_loglik(s, {k: v[:, None] for k, v in c.items()}, population_shift)[:, :, None]
        a, b = c["age"] - 63.0, c["bmi"] - 26.5
        risk_known = 0.05 * a + 0.35 * b + 1.5 * c["diabetes"] + 0.8 * (c["smoking"] == 2) - 0.5 * c["high_cholesterol"]
        centre = np.where(c["sex"] == MALE, *RISK_CENTRE)
        risk = (risk_known[:, None] + 0.20 * (s - 134.0) - centre[:, None])[:, :, None]
        prior_z = _log_normal(z, RISK_WEIGHT * risk / RISK_SD, np.sqrt(1.0 - RISK_WEIGHT**2))
        mean_m = ref.by_sex("ilvm_mean", c["sex"])[:, None, None]
        sd_m = ref.by_sex("ilvm_sd_model", c["sex"])[:, None, None]
        lvh = (mean_m + sd_m * z) > ref.by_sex("lvh_cutoff", c["sex"])[:, None, None]
        base = clin + prior_z + np.where(lvh, log_w[1], log_w[0])
        ex = {k: part[k].to_numpy(dtype=np.float64) for k in EXPRESSED}
        full = base + _ecg_loglik(hp, ex, z, s[:, :, None], c, electrode_sd)
        row = {"eid": part["eid"].to_numpy()}
        for name, logp in (("oracle", full), ("oracle_clinical", base)):
            post = np.exp(logp - logsumexp(logp, axis=(1, 2), keepdims=True)).sum(axis=1)  # [B, Z]
            ez = post @ Z_GRID
            row[f"{name}_ilvm"] = mean_m[:, 0, 0] + sd_m[:, 0, 0] * ez
            row[f"{name}_lvh_prob"] = (post * lvh[:, 0, :]).sum(axis=1)
            if name == "oracle":
                row["oracle_ilvm_sd"] = sd_m[:, 0, 0] * np.sqrt(np.clip(post @ Z_GRID**2 - ez**2, 0.0, None))
        out.append(pd.DataFrame(row))
    return pd.concat(out, ignore_index=True)[["eid", *ORACLE_COLUMNS]]
