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


def _explained_and_predicted_meta(bundle, cohort_yaml, ecg, clinical, out, monkeypatch):
    """The clinical features the network got from ``aiecg explain --ecg`` (attributions.npz) and from
    ``aiecg predict`` (its prediction loop, spied on) for the same file and table."""
    import aiecg.workflows.predict as predict_workflow

    assert main(["-q", "explain", "--bundle", str(bundle), "--cohort", str(cohort_yaml), "--ecg", str(ecg),
                 "--clinical", str(clinical), "--out", str(out), "--steps", "2", "--no-figures"]) == 0
    seen, loop = [], predict_workflow.predict
    monkeypatch.setattr(predict_workflow, "predict", lambda model, ecg, meta, *a, **k: seen.append(meta) or
                        loop(model, ecg, meta, *a, **k))
    table = predict_workflow.predict_files(bundle, [ecg], clinical=clinical, id_column="id",
                                           impute_missing_columns=True)
    assert table.loc[0, "status"] == "ok" and len(seen) == 1
    return np.load(out / "attributions.npz")["meta"][0], seen[0][0], json.loads((out / "explain.json").read_text())


@pytest.mark.parametrize("row", [{"id": "example-XML1", "age": 53, "sex": "male"},  # text for a 1/0 model
                                 {"id": "example-XML1", "age": 53}])  # no table sex: the header's (male)
def test_the_network_gets_the_sex_explain_reports_as_predict_does(row, ilvm_run, synth_cohort, cardiosoft_xml,
                                                                  tmp_path, monkeypatch):
    from aiecg.bundle import load_bundle

    bundle = ilvm_run / "model.aiecg"
    clinical = tmp_path / "clinical.csv"
    pd.DataFrame([row]).to_csv(clinical, index=False)
    explained, predicted, summary = _explained_and_predicted_meta(bundle, synth_cohort / "cohort.yaml",
                                                                  cardiosoft_xml, clinical, tmp_path / "x",
                                                                  monkeypatch)
    sex = load_bundle(bundle).encoder.feature_names.index("sex")
    assert summary["sex"] == "male" and explained[sex] == 1.0  # the encoder's mode would be either
    assert "sex" not in summary["imputed_clinical_values"]
    np.testing.assert_allclose(explained, predicted, atol=1e-6)  # every feature as predict encodes it


def test_a_one_row_table_for_another_id_is_refused(ilvm_run, synth_cohort, cardiosoft_xml, tmp_path, capsys):
    clinical = tmp_path / "clinical.csv"
    pd.DataFrame([{"id": "someone-else", "age": 61}]).to_csv(clinical, index=False)
    assert main(["-q", "explain", "--bundle", str(ilvm_run / "model.aiecg"), "--cohort",
                 str(synth_cohort / "cohort.yaml"), "--ecg", str(cardiosoft_xml), "--clinical", str(clinical),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "0 rows for example-XML1.xml" in err and not (tmp_path / "x" / "explain.json").exists()


def test_participants_without_the_target_do_not_change_the_training_split(synth_cohort, cardiosoft_xml, tmp_path):
    """A cohort listing participants without the target (left out at training): the split re-created for the
    ``--ecg`` baseline leaves them out too, so it is the bundle's, not a 'changed cohort'."""
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for name in ("cohort.yaml", "ecg", "store", "truth.parquet", "truth_beats.parquet"):
        (cohort / name).symlink_to(synth_cohort / name)
    table = pd.read_parquet(synth_cohort / "cohort.parquet")
    table.loc[table.index[::7], "ilvm"] = np.nan  # nine participants whose mass is not known
    table.to_parquet(cohort / "cohort.parquet")
    assert main(["-q", "train", "--cohort", str(cohort / "cohort.yaml"), "--out", str(tmp_path / "runs"), "--name",
                 "m", "--target", "INDEXED_MASS", "--epochs", "1"]) == 0
    clinical = tmp_path / "clinical.csv"
    pd.DataFrame([{"id": cardiosoft_xml.stem, "age": 61}]).to_csv(clinical, index=False)
    assert main(["-q", "explain", "--bundle", str(tmp_path / "runs" / "m" / "model.aiecg"), "--cohort",
                 str(cohort / "cohort.yaml"), "--ecg", str(cardiosoft_xml), "--clinical", str(clinical), "--out",
                 str(tmp_path / "x"), "--steps", "2", "--no-figures"]) == 0
