"""generate_cohort: layout, determinism across runs and workers, round trip through the readers."""

import numpy as np
import pandas as pd
import pytest
import yaml

from aiecg.io import read_ecg
from aiecg.synth import COHORT_COLUMNS, DomainShift, SynthConfig, generate_cohort
from aiecg.synth.population import select_cohort
from aiecg.synth.record import FIDUCIAL_COLUMNS, RecordParams, synthesise_record


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    return generate_cohort(out, SynthConfig(n=12, seed=3, lvh_prevalence=0.25))


def test_layout_columns_and_yaml(cohort):
    table = pd.read_parquet(cohort.table)
    assert tuple(table.columns) == COHORT_COLUMNS
    assert tuple(pd.read_csv(cohort.table_csv).columns) == COHORT_COLUMNS
    assert table["eid"].tolist() == list(range(1000001, 1000013))
    assert table["ecg_file"].iloc[0] == "ecg/1000001_20205_2_0.xml"
    assert all((cohort.out_dir / f).exists() for f in table["ecg_file"])
    assert int(table["lvh"].sum()) == 3
    for col in ("sex", "hypertension", "diabetes", "high_cholesterol", "alcohol", "ethnicity", "lvh"):
        assert table[col].dtype == np.int64 and set(table[col]) <= {0, 1}
    assert set(table["smoking"]) <= {0, 1, 2} and set(table["remodelling"]) <= {0, 1, 2, 3}
    mapping = yaml.safe_load(cohort.cohort_yaml.read_text())
    assert mapping["table"] == "cohort.parquet" and mapping["id_column"] == "eid"
    assert mapping["ecg"] == {"column": "ecg_file", "format": "cardiosoft"}
    assert mapping["targets"]["INDEXED_MASS"] == "ilvm" and mapping["targets"]["HN"] == "remodelling"
    assert mapping["clinical"]["categorical"] == {"smoking": [0, 1, 2]}
    assert set(mapping["clinical"]["continuous"]) <= set(COHORT_COLUMNS)


def test_truth_tables(cohort):
    table, truth = pd.read_parquet(cohort.table), pd.read_parquet(cohort.truth)
    beats = pd.read_parquet(cohort.beats_truth)
    assert truth["eid"].tolist() == table["eid"].tolist()
    for col in ("lvm", "qrs_ms", "strain", "laa", "heart_rate", "is_bad_recording", "bad_reason", "n_ectopic",
                "sv1_mv", "rv5_mv", "rv6_mv", "ravl_mv", "sv3_mv", "voltage_attenuation", "qrs_mass_factor"):
        assert col in truth.columns
    np.testing.assert_allclose(truth["lvm"], table["lvm"])
    assert list(beats.columns) == ["eid", "record_id", "beat", "sample", "is_ectopic", *FIDUCIAL_COLUMNS]
    assert (beats["record_id"] == beats["eid"].astype(str) + "_20205_2_0").all()
    np.testing.assert_array_equal(beats["sample"], np.rint(beats["r_peak_s"] * 500).astype(int))
    sinus = beats[~beats["is_ectopic"]].dropna()
    assert len(sinus) > 0.8 * (~beats["is_ectopic"]).sum()
    # Order of the waves within every complete sinus beat, and plausible durations.
    for a, b in (("p_on_s", "p_peak_s"), ("p_peak_s", "p_off_s"), ("p_off_s", "qrs_on_s"), ("qrs_on_s", "r_peak_s"),
                 ("r_peak_s", "qrs_off_s"), ("qrs_off_s", "t_peak_s"), ("t_peak_s", "t_off_s")):
        assert (sinus[a] < sinus[b]).all(), (a, b)
    assert (sinus["qrs_off_s"] - sinus["qrs_on_s"]).between(0.06, 0.16).all()
    assert (sinus["t_off_s"] - sinus["qrs_on_s"]).between(0.3, 0.55).all()
    assert beats.loc[beats["is_ectopic"], "p_on_s"].isna().all()
    counts = beats.groupby("eid").size().reindex(table["eid"]).to_numpy()
    assert (counts == truth["n_beats"].to_numpy()).all()
    assert beats["sample"].between(0, 4999).all()
    np.testing.assert_allclose(table["vent_rate"], np.round(truth["heart_rate"]))


def test_xml_reads_back_as_the_generated_signal(cohort):
    table = pd.read_parquet(cohort.table)
    people = select_cohort(12, np.random.default_rng([3, 0]), 0.25)
    for i in (0, 5):
        ecg = read_ecg(cohort.out_dir / table["ecg_file"].iloc[i])
        assert ecg.signal.shape == (12, 5000) and ecg.fs == 500.0
        assert ecg.median.shape == (12, 600) and ecg.median_fs == 500.0
        rec = synthesise_record(people.iloc[i].to_dict(), np.random.default_rng([3, 1, i]))
        assert np.abs(ecg.signal - rec.signal).max() <= 0.0025 + 1e-6
        assert np.abs(ecg.median - rec.median).max() <= 0.0025 + 1e-6
        assert ecg.measurements["VentricularRate"] == table["vent_rate"].iloc[i]
        assert ecg.patient["sex"] == ("male" if table["sex"].iloc[i] == 1 else "female")
        assert ecg.lead_measurements["RAmplitude"]["V5"] == pytest.approx(rec.truth["rv5_mv"] * 1000, abs=0.5)


def test_same_seed_same_bytes_across_runs_and_workers(tmp_path, cohort):
    cfg = SynthConfig(n=12, seed=3, lvh_prevalence=0.25)
    generate_cohort(tmp_path / "again", cfg)
    generate_cohort(tmp_path / "pool", SynthConfig(n=12, seed=3, lvh_prevalence=0.25, workers=2))
    reference = _files(cohort.out_dir)
    assert _files(tmp_path / "again") == reference
    assert _files(tmp_path / "pool") == reference
    generate_cohort(tmp_path / "other", SynthConfig(n=12, seed=4, lvh_prevalence=0.25))
    assert _files(tmp_path / "other")["cohort.parquet"] != reference["cohort.parquet"]


def test_wfdb_format_and_domain_shift(tmp_path):
    shift = DomainShift(gain=1.5, noise=0.0)
    res = generate_cohort(tmp_path, SynthConfig(n=3, seed=1, fmt="wfdb", shift=shift))
    table = pd.read_parquet(res.table)
    assert table["ecg_file"].iloc[0] == "ecg/1000001_20205_2_0.hea"
    assert yaml.safe_load(res.cohort_yaml.read_text())["ecg"]["format"] == "wfdb"
    ecg = read_ecg(tmp_path / table["ecg_file"].iloc[0])
    assert ecg.signal.shape == (12, 5000)
    person = select_cohort(3, np.random.default_rng([1, 0])).iloc[0].to_dict()
    rec = synthesise_record(person, np.random.default_rng([1, 1, 0]), RecordParams(gain=1.5, noise=0.0))
    base = synthesise_record(person, np.random.default_rng([1, 1, 0]), RecordParams(noise=0.0))
    assert np.abs(ecg.signal - rec.signal).max() <= 0.0006
    if not rec.truth["is_bad_recording"]:
        np.testing.assert_allclose(rec.clean, 1.5 * base.clean, atol=1e-9)


def test_bad_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="format"):
        generate_cohort(tmp_path, SynthConfig(n=2, fmt="edf"))
    with pytest.raises(ValueError, match="lvh_prevalence"):
        generate_cohort(tmp_path, SynthConfig(n=2, lvh_prevalence=1.5))
