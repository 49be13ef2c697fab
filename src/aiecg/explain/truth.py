"""Where the synthetic generator puts the LV-mass effect on the ECG: the truth to compare attributions with.

For each explained participant of a synthetic cohort (its ``truth.parquet`` holds the latent mass), the generator's
beat (:func:`aiecg.synth.heart.sample_morphology`) is drawn twice from one random state: at the participant's
latent mass and at the mean mass of the population (``mass_z = 0``), with sex, age, BMI, blood-pressure load and
LV volume held at the participant's values. The difference is what mass alone does to this beat; it is split by
the lobes the generator draws as P, QRS and ST-T (the ST lobe and the T lobes) and summed as |difference| over
time per lead (Dower projection, the 12 standard leads). The share of each wave is comparable with the share of
|attribution| that falls in that wave (:mod:`aiecg.explain.waves`): the baseline of the maps is the mean beat of
the participant's sex, i.e. roughly a beat at mean mass.

The comparison is only approximate where a wave's lobes reach beyond the measured wave boundaries, and for a
generator run with non-default heart parameters (a domain-shifted synthetic cohort: the default strengths are
used here, and the summary says so).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from aiecg.ecg import STANDARD_LEADS
from aiecg.synth.heart import QRS, ST, P, T, project, render_dipole, sample_morphology

TRUTH_FILE = "truth.parquet"
KINDS = {"P": (P,), "QRS": (QRS,), "ST-T": (ST, T)}


def truth_table(cohort_path: str | Path) -> pd.DataFrame | None:
    """The generator's truth beside a synthetic cohort's YAML (None for any other cohort)."""
    path = Path(cohort_path).parent / TRUTH_FILE
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    needed = {"eid", "mass_z", "sbp_untreated", "volume_z"}
    return truth if needed <= set(truth.columns) else None


def effect_by_wave(participants: pd.DataFrame, leads: list[str], seed: int = 0) -> np.ndarray:
    """|beat at the participant's mass - beat at mean mass| summed over time, per participant, lead and wave:
    [n, leads, 3] (P, QRS, ST-T), as shares of the participant's total.

    Args:
        participants: columns ``sex`` (1 male), ``age``, ``bmi``, ``mass_z``, ``sbp_untreated``, ``volume_z``.
        leads: the leads to report (any of the 12 standard leads).
    """
    rows = [STANDARD_LEADS.index(lead) for lead in leads]
    t = np.arange(-0.45, 0.75, 0.001)
    out = np.zeros((len(participants), len(leads), len(KINDS)))
    for i, person in enumerate(participants.itertuples(index=False)):
        common = {"sex": int(person.sex), "age": float(person.age), "bmi": float(person.bmi),
                  "bp_load": (float(person.sbp_untreated) - 134.0) / 16.0, "volume_z": float(person.volume_z)}
        at_mass, _ = sample_morphology(np.random.default_rng([seed, i]), mass_z=float(person.mass_z), **common)
        at_mean, _ = sample_morphology(np.random.default_rng([seed, i]), mass_z=0.0, **common)
        for k, kinds in enumerate(KINDS.values()):
            beats = []
            for morph in (at_mass, at_mean):
                keep = np.isin(morph.kinds, kinds)[:, None]
                dipole = render_dipole(t, np.zeros(1), [replace(morph, vectors=morph.vectors * keep)], np.ones(1))
                beats.append(project(dipole)[rows])
            out[i, :, k] = np.abs(beats[0] - beats[1]).sum(axis=1)
    total = out.sum(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, out / total, np.nan)
