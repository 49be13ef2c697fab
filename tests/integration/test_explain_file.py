"""``aiecg explain --ecg FILE``: one real ECG file explained with a bundle, against its training cohort."""

import json

import numpy as np
import pandas as pd
import pytest

from aiecg.cli import main

pytest.importorskip("captum")


def test_one_real_ecg_file_is_explained_against_the_training_split(ilvm_run, synth_cohort, cardiosoft_xml, tmp_path):
    clinical = tmp_path / "clinical.csv"
    pd.DataFrame([{"id": cardiosoft_xml.stem, "age": 61, "sex": "female", "sbp": 150}]).to_csv(clinical, index=False)
    out = tmp_path / "explain"
    assert main(["-q", "explain", "--bundle", str(ilvm_run / "model.aiecg"), "--cohort",
                 str(synth_cohort / "cohort.yaml"), "--ecg", str(cardiosoft_xml), "--clinical", str(clinical),
                 "--out", str(out), "--steps", "8"]) == 0
    summary = json.loads((out / "explain.json").read_text())
    assert summary["n"] == 1 and summary["split"] == "one file" and summary["sex"] == "female"  # the table's sex
    assert "age" not in summary["imputed_clinical_values"] and "bmi" in summary["imputed_clinical_values"]
    assert summary["baselines"]["ecg"]["source"].startswith("training split of")
    data = np.load(out / "attributions.npz")
    assert data["ecg"].shape[0] == 1 and "single" in data.files and "typical_high" not in data.files
    gap = data["ecg_attr"].sum() + data["meta_attr"].sum() - (data["outputs"][0] - data["baseline_outputs"][0])
    assert gap == pytest.approx(float(data["delta"][0]), abs=1e-4)  # completeness against the per-sex baseline
    waves = pd.read_csv(out / "waves.csv")
    overall = waves[waves["lead"] == "all"]
    assert overall["share"].sum() == pytest.approx(1.0) and overall["share_low"].isna().all()  # no interval of one
    assert (out / "figures" / "explain_beats_one_explanations__explain_.png").is_file()


def test_a_clinical_table_without_the_files_row_is_one_clear_error(ilvm_run, synth_cohort, cardiosoft_xml, tmp_path,
                                                                   capsys):
    clinical = tmp_path / "clinical.csv"
    pd.DataFrame([{"id": "a", "age": 61}, {"id": "b", "age": 70}]).to_csv(clinical, index=False)
    assert main(["-q", "explain", "--bundle", str(ilvm_run / "model.aiecg"), "--cohort",
                 str(synth_cohort / "cohort.yaml"), "--ecg", str(cardiosoft_xml), "--clinical", str(clinical),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "0 rows for example-XML1.xml" in err and not (tmp_path / "x" / "explain.json").exists()
