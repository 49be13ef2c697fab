"""The built-in oracle: calibrated, exact where the ECG says nothing, and never visible to a method."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from aiecg.data.cohort import load_cohort
from aiecg.evaluate.baselines import measurement_columns
from aiecg.synth import COHORT_COLUMNS, EXTERNAL_SHIFT, SynthConfig, generate_cohort
from aiecg.synth.heart import EXPRESSED, HeartParams
from aiecg.synth.oracle import ORACLE_COLUMNS, oracle_posterior
from aiecg.synth.population import select_cohort
from aiecg.synth.record import synthesise_record


def _in_memory(n, hp, seed=0, prevalence=0.2):
    people = select_cohort(n, np.random.default_rng([seed, 0]), prevalence)
    people.insert(0, "eid", np.arange(n))
    truth = pd.DataFrame([{"eid": i, **synthesise_record(row, np.random.default_rng([seed, 1, i]), heart=hp).truth}
                          for i, row in enumerate(people.to_dict("records"))])
    return people, truth


@pytest.fixture(scope="module")
def memory():
    people, truth = _in_memory(300, HeartParams())
    return people, truth, oracle_posterior(people, truth, HeartParams(), 0.0, 0.2)


def test_oracle_is_calibrated_and_beats_the_clinical_posterior(memory):
    people, _, orc = memory
    y, lvh = people["ilvm"].to_numpy(), people["lvh"].to_numpy()
    assert orc["oracle_lvh_prob"].mean() == pytest.approx(0.2, abs=0.04)
    assert orc["oracle_clinical_lvh_prob"].mean() == pytest.approx(0.2, abs=0.04)
    slope = np.polyfit(orc["oracle_ilvm"], y, 1)[0]  # a posterior mean is calibrated: slope ~1
    assert 0.85 < slope < 1.15
    r2 = {k: 1 - ((y - orc[k]) ** 2).sum() / ((y - y.mean()) ** 2).sum()
          for k in ("oracle_ilvm", "oracle_clinical_ilvm")}
    assert 0.6 < r2["oracle_ilvm"] < 0.9 and r2["oracle_ilvm"] > r2["oracle_clinical_ilvm"] + 0.1
    lvh_brier = np.mean((orc["oracle_lvh_prob"] - lvh) ** 2)
    assert lvh_brier < np.mean((orc["oracle_clinical_lvh_prob"] - lvh) ** 2)
    assert (orc["oracle_ilvm_sd"] > 0).all()


def test_oracle_equals_the_clinical_posterior_when_the_ecg_carries_no_mass():
    silent = HeartParams(voltage_mass=0.0, posterior_mass_deg=0.0, leftward_mass_deg=0.0, qrs_mass_ms=0.0,
                         strain_slope=0.0, t_mass=0.0, laa_slope=0.0, p_mass_ms=0.0, qt_mass_ms=0.0,
                         intrinsicoid=False, fragmentation=False, loop_shape=False, qrs_t_angle=False,
                         phenotypes=False)
    people, truth = _in_memory(40, silent, seed=2)
    orc = oracle_posterior(people, truth, silent, 0.0, 0.2)
    np.testing.assert_allclose(orc["oracle_ilvm"], orc["oracle_clinical_ilvm"], atol=1e-9)
    np.testing.assert_allclose(orc["oracle_lvh_prob"], orc["oracle_clinical_lvh_prob"], atol=1e-9)
    # With the effects on, the same participants' oracle moves away from the clinical posterior.
    loud = replace(silent, voltage_mass=0.3, intrinsicoid=True)
    people, truth = _in_memory(40, loud, seed=2)
    orc = oracle_posterior(people, truth, loud, 0.0, 0.2)
    assert np.abs(orc["oracle_ilvm"] - orc["oracle_clinical_ilvm"]).mean() > 1.0


def test_oracle_is_in_the_truth_table_only(tmp_path):
    res = generate_cohort(tmp_path, SynthConfig(n=8, seed=5, lvh_prevalence=0.25))
    table, truth = pd.read_parquet(res.table), pd.read_parquet(res.truth)
    assert set(ORACLE_COLUMNS) <= set(truth.columns) and set(EXPRESSED) <= set(truth.columns)
    assert truth[list(ORACLE_COLUMNS)].notna().all().all()
    for columns in (table.columns, pd.read_csv(res.table_csv).columns, COHORT_COLUMNS,
                    load_cohort(res.cohort_yaml).frame.columns, measurement_columns(list(truth.columns))):
        assert not set(ORACLE_COLUMNS) & set(columns)
    assert "oracle" not in res.cohort_yaml.read_text()
    mapping = yaml.safe_load(res.cohort_yaml.read_text())
    assert not any(c.startswith("oracle") for group in mapping["clinical"].values() for c in group)


def test_external_shift_changes_device_population_and_prevalence(tmp_path):
    res = generate_cohort(tmp_path, SynthConfig(n=10, seed=5, shift=EXTERNAL_SHIFT))
    table, truth = pd.read_parquet(res.table), pd.read_parquet(res.truth)
    assert int(table["lvh"].sum()) == 3  # the shift has its own 30% LVH (an explicit --lvh-prevalence wins)
    assert truth["oracle_lvh_prob"].between(0, 1).all()
    # The oracle knows the external recording's larger chest-electrode gain error (it widens the noise on the
    # chest-to-limb voltage ratio) and uses it.
    args = (table, truth.drop(columns=list(ORACLE_COLUMNS)), HeartParams(), EXTERNAL_SHIFT.population, 0.3)
    written = truth.set_index("eid")["oracle_ilvm"]
    own = oracle_posterior(*args, electrode_sd=EXTERNAL_SHIFT.electrode_sd).set_index("eid")["oracle_ilvm"]
    protocol = oracle_posterior(*args, electrode_sd=1.0).set_index("eid")["oracle_ilvm"]
    np.testing.assert_allclose(own.loc[written.index], written, rtol=1e-9)
    assert np.abs(protocol.loc[written.index] - written).max() > 1e-6
