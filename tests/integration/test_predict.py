"""``aiecg predict`` end to end on the session's synthetic cohort and its two trained runs (tests/conftest.py:
60 participants, 2 epochs; shared, so every output goes to tmp_path) and on the real files."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from aiecg.bundle import load_bundle, save_bundle
from aiecg.cli import main
from aiecg.errors import BundleError
from aiecg.io import read_ecg
from aiecg.io.wfdb import write_wfdb
from aiecg.workflows.predict import bundle_summary, describe_bundle, predict_files

pytestmark = pytest.mark.integration

SHARED_COLUMNS = ["is_m", "ilvm_pred", "lvh_pred_cutoff", "lvh_proba_lr", "lvh_proba_prioradj_lr"]


def _test_files(synth_cohort, ilvm_run) -> tuple[pd.DataFrame, list[str]]:
    results = pd.read_csv(ilvm_run / "results.csv")
    return results, [str(synth_cohort / "ecg" / f"{eid}_20205_2_0.xml") for eid in results["eid"]]


def test_predict_from_xml_equals_evaluate(synth_cohort, ilvm_run, tmp_path, capsys):
    results, files = _test_files(synth_cohort, ilvm_run)
    out = tmp_path / "pred.csv"
    assert main(["-q", "predict", "--bundle", str(ilvm_run / "model.aiecg"), *files, "--out", str(out),
                 "--clinical", str(synth_cohort / "cohort.csv"), "--id-column", "eid", "--workers", "1"]) == 0
    capsys.readouterr()
    table = pd.read_csv(out)
    assert len(table) == len(results) and (table["status"] == "ok").all() and (table["qc"] == "pass").all()
    assert (table["n_imputed"] == 0).all() and (table["sex_source"] == "table").all()
    table["eid"] = table["record_id"].str.split("_").str[0].astype(int)
    merged = results.merge(table, on="eid", suffixes=("_evaluate", ""))
    assert len(merged) == len(results)
    for column in SHARED_COLUMNS:
        np.testing.assert_allclose(merged[column], merged[f"{column}_evaluate"], rtol=1e-5, atol=1e-6,
                                   err_msg=column)
    # the 90% split-conformal interval (Mondrian by sex) holds the prediction, with each sex's half-width the
    # order statistic of that sex's validation residuals saved in the bundle
    conformal = load_bundle(ilvm_run / "model.aiecg").thresholds["conformal"]
    assert "Mondrian" in conformal["method"]

    def half_width(scores):
        rank = int(np.ceil((len(scores) + 1) * 0.9))
        return np.sort(scores)[rank - 1] if rank <= len(scores) else np.inf

    half = np.where(table["is_m"] == 1, half_width(conformal["groups"]["male"]["INDEXED_MASS"]),
                    half_width(conformal["groups"]["female"]["INDEXED_MASS"]))
    np.testing.assert_allclose(table["ilvm_pred_upper"] - table["ilvm_pred"], half, rtol=1e-6)
    np.testing.assert_allclose(table["ilvm_pred"] - table["ilvm_pred_lower"], half, rtol=1e-6)
    assert (table["interval"] == 0.9).all()


def test_onnx_engine_gives_the_same_rows(synth_cohort, ilvm_run, lvh_ecg_only_run, tmp_path):
    _, files = _test_files(synth_cohort, ilvm_run)
    bundle = ilvm_run / "model.aiecg"
    onnx = tmp_path / "fcn.onnx"
    assert main(["-q", "export", "--bundle", str(bundle), "--onnx", str(onnx)]) == 0
    kwargs = {"clinical": synth_cohort / "cohort.csv", "id_column": "eid"}
    torch_rows = predict_files(bundle, files[:6], **kwargs)
    onnx_rows = predict_files(bundle, files[:6], engine="onnx", onnx_path=onnx, **kwargs)
    assert list(torch_rows.columns) == list(onnx_rows.columns)
    pd.testing.assert_frame_equal(torch_rows.select_dtypes(exclude="number"), onnx_rows.select_dtypes(exclude="number"))
    np.testing.assert_allclose(torch_rows["ilvm_pred"], onnx_rows["ilvm_pred"], atol=1e-4)
    np.testing.assert_allclose(torch_rows["lvh_proba_lr"], onnx_rows["lvh_proba_lr"], atol=1e-5)
    # an export of another bundle (ECG-only, so no clinical input) is refused, not run
    other = tmp_path / "ecg_only.onnx"
    assert main(["-q", "export", "--bundle", str(lvh_ecg_only_run / "model.aiecg"), "--onnx",
                 str(other)]) == 0
    with pytest.raises(BundleError, match="is the export of another model"):
        predict_files(bundle, files[:1], engine="onnx", onnx_path=other, **kwargs)


def test_missing_clinical_values_are_imputed_by_the_encoder_and_counted(synth_cohort, ilvm_run, tmp_path):
    _, files = _test_files(synth_cohort, ilvm_run)
    bundle = load_bundle(ilvm_run / "model.aiecg")
    table = pd.read_csv(synth_cohort / "cohort.csv")
    eids = [int(f.split("/")[-1].split("_")[0]) for f in files[:4]]
    holes = table.copy()
    holes.loc[holes["eid"] == eids[0], ["sbp", "smoking"]] = np.nan
    filled = table.copy()
    filled.loc[filled["eid"] == eids[0], "sbp"] = bundle.encoder.fill["sbp"]
    filled.loc[filled["eid"] == eids[0], "smoking"] = bundle.encoder.fill["smoking"]
    with_holes = predict_files(bundle, files[:4], clinical=holes, id_column="eid")
    by_hand = predict_files(bundle, files[:4], clinical=filled, id_column="eid")
    assert with_holes["n_imputed"].tolist() == [2, 0, 0, 0]
    assert set(with_holes.loc[0, "imputed"].split(";")) == {"sbp", "smoking"}
    np.testing.assert_array_equal(with_holes["ilvm_pred"], by_hand["ilvm_pred"])
    # a file without a row in the table is an error row; a column absent altogether is refused (exit 2)
    rows = predict_files(bundle, files[:4], clinical=table[table["eid"] != eids[1]], id_column="eid")
    assert rows["status"].tolist() == ["ok", "clinical_error", "ok", "ok"]
    assert f"no row for id {files[1].split('/')[-1][:-4]}" in rows.loc[1, "reason"]
    assert np.isnan(rows.loc[1, "ilvm_pred"])
    table.drop(columns=["sbp"]).to_csv(tmp_path / "no_sbp.csv", index=False)
    assert main(["-q", "predict", "--bundle", str(ilvm_run / "model.aiecg"), files[0], "--out",
                 str(tmp_path / "p.csv"), "--clinical", str(tmp_path / "no_sbp.csv"), "--id-column", "eid"]) == 2
    assert not (tmp_path / "p.csv").exists()


def test_every_real_format_file_gives_one_row(lvh_ecg_only_run, shared_data, tmp_path):
    formats = shared_data / "formats"
    out = tmp_path / "real.parquet"
    assert main(["-q", "predict", "--bundle", str(lvh_ecg_only_run / "model.aiecg"), str(formats),
                 "--out", str(out), "--workers", "2"]) == 0
    table = pd.read_parquet(out)
    expected = sorted(p.name for p in formats.rglob("*") if p.is_file() and p.suffix.lower() in
                      (".xml", ".scp", ".dcm"))
    assert sorted(table["file"].map(lambda f: f.split("/")[-1])) == expected
    bad = table[table["file"].str.endswith("demo.scp")].iloc[0]
    assert bad["status"] == "read_error" and "SCP" in bad["reason"] and np.isnan(bad["lvh_proba"])
    good = table[~table["file"].str.endswith("demo.scp")]
    assert (good["status"] == "ok").all(), good[["file", "status", "reason"]]
    assert good["lvh_proba"].between(0, 1).all() and good["lvh_call"].isin([0, 1]).all()
    assert set(good["sex_source"]) <= {"ecg", ""}


def test_corrupt_files_in_a_folder_are_error_rows(synth_cohort, lvh_ecg_only_run, tmp_path):
    folder = tmp_path / "archive"
    sources = sorted((synth_cohort / "ecg").glob("*.xml"))
    for copy in range(5):  # 300 good files in sub-folders, then 3 bad ones: 1% corrupt
        (folder / f"batch{copy}").mkdir(parents=True)
        for source in sources:
            shutil.copy(source, folder / f"batch{copy}" / f"{copy}{source.name}")
    text = sources[0].read_text(encoding="iso-8859-1")
    (folder / "truncated.xml").write_text(text[: len(text) // 2], encoding="iso-8859-1")
    strip = text.index("<StripData>")
    wrong = text[:strip] + text[strip:].replace("<ChannelSampleCountTotal>5000<", "<ChannelSampleCountTotal>4990<", 1)
    (folder / "wrong_count.xml").write_text(wrong, encoding="iso-8859-1")
    (folder / "empty.xml").write_bytes(b"")
    table = predict_files(lvh_ecg_only_run / "model.aiecg", [folder], workers=2)
    assert len(table) == 303
    errors = table.set_index(table["file"].map(lambda f: f.split("/")[-1]))
    for name in ("truncated.xml", "wrong_count.xml", "empty.xml"):
        assert errors.loc[name, "status"] == "read_error" and errors.loc[name, "reason"], name
        assert np.isnan(errors.loc[name, "lvh_proba"])
    assert "4990" in errors.loc["wrong_count.xml", "reason"]
    good = table[~table["file"].str.contains("truncated|wrong_count|empty")]
    reference = pd.read_parquet(synth_cohort / "store" / "index.parquet")
    assert (good["status"] == "ok").sum() == 5 * (reference["status"] == "ok").sum()
    assert good.loc[good["status"] == "ok", "lvh_proba"].between(0, 1).all()
    # the same ECG in five sub-folders gets the same prediction
    good = good.assign(name=good["file"].map(lambda f: f.split("/")[-1][1:]))
    assert (good.groupby("name")["lvh_proba"].nunique(dropna=False) == 1).all()


def test_recordings_the_bundle_cannot_serve_are_error_rows(synth_cohort, lvh_ecg_only_run, shared_data, tmp_path):
    ecg = read_ecg(sorted((synth_cohort / "ecg").glob("*.xml"))[0])
    no_limb = write_wfdb(tmp_path / "precordial", type(ecg).from_array(ecg.select(["V1", "V2", "V3", "V4", "V5",
                                                                                     "V6"]),
                                                                          ["V1", "V2", "V3", "V4", "V5", "V6"], 500))
    short = write_wfdb(tmp_path / "short", type(ecg).from_array(ecg.signal[:, :1000], ecg.leads, 500))
    low_rate = shared_data / "ptbxl" / "records100" / "00841_lr.hea"
    table = predict_files(lvh_ecg_only_run / "model.aiecg", [no_limb, short, low_rate])
    assert table["status"].tolist() == ["unsupported"] * 3
    assert "lead(s) I, II, III, aVR, aVL, aVF missing" in table.loc[0, "reason"]
    assert "2.00 s long" in table.loc[1, "reason"] and ">= 4.5 s" in table.loc[1, "reason"]
    assert "recorded at 100 Hz" in table.loc[2, "reason"] and ">= 200 Hz" in table.loc[2, "reason"]
    assert table["lvh_proba"].isna().all()


def test_cohort_yaml_input_uses_its_own_clinical_mapping(synth_cohort, ilvm_run):
    results, _ = _test_files(synth_cohort, ilvm_run)
    table = predict_files(ilvm_run / "model.aiecg", [synth_cohort / "cohort.yaml"])
    assert len(table) == 60
    table = table.set_index(table["record_id"].astype(int))
    ok = results.set_index("eid")
    np.testing.assert_allclose(table.loc[ok.index, "ilvm_pred"], ok["ilvm_pred"], rtol=1e-5)
    index = pd.read_parquet(synth_cohort / "store" / "index.parquet").set_index("id")
    assert (table["status"] == index.loc[table.index.astype(str), "status"].to_numpy()).all()


def test_a_file_that_crashes_its_reader_is_one_row_and_every_other_file_is_kept(synth_cohort, lvh_ecg_only_run,
                                                                                 tmp_path):
    """A real segfault in the reader (a test-only reader registered here; workers are forked, so they see it)."""
    import os
    import signal

    from aiecg.io import registry
    from aiecg.io.registry import Reader, register_reader

    mark = b"AIECG-PREDICT-SEGV"

    def crash(path, **_):
        os.kill(os.getpid(), signal.SIGSEGV)

    register_reader(Reader("segv-test", crash, (".bad",), lambda head: head.startswith(mark)))
    try:
        folder = tmp_path / "mixed"
        folder.mkdir()
        for source in sorted((synth_cohort / "ecg").glob("*.xml"))[:6]:
            shutil.copy(source, folder / source.name)
        (folder / "0crash.bad").write_bytes(mark)
        table = predict_files(lvh_ecg_only_run / "model.aiecg", [folder], workers=1)
    finally:
        registry._READERS.pop("segv-test")
    rows = table.set_index(table["file"].map(lambda f: f.split("/")[-1]))
    assert len(rows) == 7 and rows.loc["0crash.bad", "status"] == "crashed"
    assert "crashed" in rows.loc["0crash.bad", "reason"] and "SIGSEGV" in rows.loc["0crash.bad", "reason"]
    others = rows.drop(index="0crash.bad")
    assert others["status"].isin(["ok", "qc_fail"]).all() and (others["status"] == "ok").sum() >= 5


def test_evaluating_participants_the_cohort_cannot_serve_names_them(synth_cohort, ilvm_run, tmp_path):
    from aiecg.errors import CohortError
    from aiecg.workflows.evaluate import evaluate_bundle

    results, _ = _test_files(synth_cohort, ilvm_run)
    ids = np.append(results["eid"].astype(str).to_numpy(), "999999")
    with pytest.raises(CohortError, match="1 of the .* requested participants are not usable.*999999"):
        evaluate_bundle(ilvm_run / "model.aiecg", synth_cohort / "cohort.yaml", None,
                        tmp_path / "eval_ids", ids=ids, compare=False, n_resamples=50)
    assert not (tmp_path / "eval_ids" / "results.csv").exists()


def test_predictions_say_what_they_rest_on(synth_cohort, ilvm_run, tmp_path, capsys, caplog):
    """Issue 25: text sex values, missing clinical columns named and imputable, rows resting mostly on imputed
    inputs flagged with a warning line, and the bundle's training cohort printed."""
    _, files = _test_files(synth_cohort, ilvm_run)
    files = files[:4]
    bundle = ilvm_run / "model.aiecg"
    table = pd.read_csv(synth_cohort / "cohort.csv")
    coded = predict_files(bundle, files, clinical=table, id_column="eid")
    words = table.assign(sex=table["sex"].map({1: "Male", 0: "Female"}))
    spelled = predict_files(bundle, files, clinical=words, id_column="eid")  # --sex-column text: one decoder
    assert (spelled["status"] == "ok").all(), spelled["reason"].tolist()
    np.testing.assert_array_equal(spelled["ilvm_pred"], coded["ilvm_pred"])
    assert spelled["is_m"].tolist() == coded["is_m"].tolist() and (spelled["n_imputed"] == 0).all()

    # all but four clinical columns absent: named, with the option that imputes them
    columns = list(load_bundle(bundle).encoder.spec.columns)
    kept = ["eid", "sex", "age", "bmi", "sbp"]
    n, absent = len(columns), len(columns) - 4
    table[kept].to_csv(tmp_path / "four.csv", index=False)
    args = ["predict", "--bundle", str(bundle), *files, "--out", str(tmp_path / "p.csv"), "--clinical",
            str(tmp_path / "four.csv"), "--id-column", "eid"]
    assert main(["-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{absent} of the model's {n} clinical columns are missing: " in err
    assert "diabetes" in err and "--impute-missing-columns" in err
    with caplog.at_level("INFO", logger="aiecg"):
        assert main(["-q", *args, "--impute-missing-columns"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = pd.read_csv(tmp_path / "p.csv")
    assert (rows["status"] == "ok").all() and (rows["n_imputed"] >= absent).all() and rows["mostly_imputed"].all()
    assert summary["imputed_values"] == rows["n_imputed"].sum() and summary["rows_mostly_imputed"] == 4  # all ok
    assert "rest mostly on imputed inputs" in caplog.text
    model = summary["bundle"]
    assert model["trained_on"] == "synthetic-ukb" and model["synthetic"] and model["n_train"] > 0
    assert 0 < model["lvh_prevalence_train"] < 1 and model["clinical_variables"] == n
    assert "trained on 'synthetic-ukb' (SYNTHETIC data" in caplog.text and "LVH prevalence" in caplog.text
    # no table at all: every clinical value imputed, sex from the ECG header
    rows = predict_files(bundle, files, impute_missing_columns=True)
    assert (rows["n_imputed"] == n - (rows["sex_source"] == "ecg")).all() and rows["mostly_imputed"].all()
    # a recording without a sex (a WFDB copy whose header says none) and no table: no sex-specific output at all
    ecg = read_ecg(files[0])
    anonymous = write_wfdb(tmp_path / "anonymous", type(ecg).from_array(ecg.signal, ecg.leads, ecg.fs))
    row = predict_files(bundle, [anonymous], impute_missing_columns=True).iloc[0]
    assert row["status"] == "ok" and np.isnan(row["is_m"]) and np.isfinite(row["ilvm_pred"])
    assert np.isnan(row["lvh_call"]) and np.isnan(row["lvh_pred_cutoff"]) and np.isnan(row["lvh_proba_lr"])
    assert row["reason"].startswith("sex unknown") and "lvh_pred_cutoff" in row["reason"]


def test_nothing_predicted_exits_2_with_every_row_written(lvh_ecg_only_run, tmp_path, capsys):
    page = tmp_path / "page.png"
    page.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", "--bundle", str(lvh_ecg_only_run / "model.aiecg"), str(page), "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none of the 1 files could be used (1 read_error)" in err
    assert pd.read_csv(out)["status"].tolist() == ["read_error"]


def test_a_stated_prevalence_shifts_the_probabilities_not_the_call(synth_cohort, lvh_ecg_only_run, tmp_path,
                                                                    capsys):
    files = sorted(str(p) for p in (synth_cohort / "ecg").glob("*.xml"))[:20]
    bundle = lvh_ecg_only_run / "model.aiecg"
    default = predict_files(bundle, files)
    rare = predict_files(bundle, files, target_prevalence=0.01)
    ok = default["status"] == "ok"
    threshold = load_bundle(bundle).thresholds["posthoc"]["threshold"]  # the validation split's Youden cut-off
    for table in (default, rare):  # the evaluated operating point, whatever the stated prevalence
        assert (table.loc[ok, "lvh_call"] == (table.loc[ok, "lvh_proba"] >= threshold).astype(float)).all()
        assert (table.loc[ok, "call_threshold"] == threshold).all() and "call_prevalence" not in table
    assert (rare.loc[ok, "lvh_proba_prioradj"] < default.loc[ok, "lvh_proba_prioradj"]).all()
    assert (rare.loc[ok, "lvh_proba_prioradj"] <= default.loc[ok, "lvh_proba"] + 1e-12).all()
    summary = bundle_summary(load_bundle(bundle), 0.01)
    assert summary["prioradj_prevalence"] == 0.01 and summary["prioradj_prevalence_source"] == "stated"
    assert summary["lvh_call"]["threshold"] == threshold and "Youden" in summary["lvh_call"]["rests_on"]
    assert summary["lvh_call"]["ppv_npv_at_stated_prevalence"].startswith("not available")
    line = describe_bundle(summary)
    assert "reflect an LVH prevalence of 1.0% (--target-prevalence)" in line and "not available" in line
    trained = bundle_summary(load_bundle(bundle))
    assert trained["prioradj_prevalence_source"] == "bundle"
    assert "ppv_npv_at_stated_prevalence" not in trained["lvh_call"]
    assert main(["-q", "predict", "--bundle", str(bundle), files[0], "--out", str(tmp_path / "p.csv"),
                 "--target-prevalence", "1.5"]) == 2
    assert "--target-prevalence must lie in (0, 1)" in capsys.readouterr().err


def test_a_paced_ecg_the_model_never_saw_is_named_in_its_row(lvh_ecg_only_run, tmp_path, caplog):
    from aiecg.ecg import ECG, STANDARD_LEADS
    from tests.unit.signal.test_conduction import FS, _strip, paced_beat

    file = str(write_wfdb(tmp_path / "paced", ECG.from_array(_strip(paced_beat)[0], list(STANDARD_LEADS), FS)))
    bundle = load_bundle(lvh_ecg_only_run / "model.aiecg")
    assert bundle.input_spec["include_paced"] is False  # the training default, recorded in the bundle
    with caplog.at_level("WARNING", logger="aiecg"):
        row = predict_files(bundle, [file]).iloc[0]
    assert row["status"] == "ok" and row["paced"] == "ventricular" and np.isfinite(row["lvh_proba"])
    assert "the model never saw a paced ECG" in row["reason"]
    assert "1 paced ECG file(s)" in caplog.text and file in caplog.text
    # an older bundle, written before include_paced was recorded, still loads and says it cannot tell
    del bundle.input_spec["include_paced"]
    old = load_bundle(save_bundle(bundle, tmp_path / "old.aiecg"))
    assert "does not record whether paced ECGs" in predict_files(old, [file]).iloc[0]["reason"]
    # a model trained with paced ECGs: no caution
    bundle.input_spec["include_paced"] = True
    row = predict_files(bundle, [file]).iloc[0]
    assert row["paced"] == "ventricular" and "paced" not in row["reason"]
