"""The bad-input matrix of the surfaces added after ``prepare`` (issue 22): measure, predict, export, train,
fine-tune, report, tune and explain, tried as a careless or hostile user would.

Each case asserts the exact behaviour: a silent wrong result becomes an error row or a flag with its reason; a
command that cannot work exits 2 with one line naming the file, record or column, and writes nothing. The
prepare/reader matrix is in ``test_bad_inputs.py``; extend this file for the next attack on the newer commands.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from aiecg.cli import main as aiecg
from tests.integration.test_prepare import misbehaving_reader  # noqa: F401 - a fixture: a reader that hangs or hogs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny synthetic cohort (40 participants), its store, and a one-epoch INDEXED_MASS model with clinical
    variables (``runs/fcn/model.aiecg``)."""
    root = tmp_path_factory.mktemp("surfaces")
    data = root / "data"
    assert aiecg(["-q", "synth", "--out", str(data), "--n", "40", "--lvh-prevalence", "0.25", "--seed", "3",
                  "--workers", "1"]) == 0
    assert aiecg(["-q", "prepare", "--cohort", str(data / "cohort.yaml"), "--workers", "1", "--no-beats"]) == 0
    assert aiecg(["-q", "train", "--cohort", str(data / "cohort.yaml"), "--target", "INDEXED_MASS", "--epochs", "1",
                  "--out", str(root / "runs"), "--name", "fcn"]) == 0
    return root


def _one_error_line(capsys, command: str) -> str:
    """The single stderr line of a command that exited 2 (and no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"aiecg {command}: error: "), err
    return err[0]


# ------------------------------------------------------------------------------------------ 1. path confinement
def test_measure_refuses_cohort_paths_outside_the_ecg_folder_as_prepare_and_predict_do(cardiosoft_xml, tmp_path):
    """A ``../`` in the table's ECG column or an id that walks out of a ``{id}`` pattern is the record's
    read_error with the reason prepare gives; the file outside (a readable ECG) is never measured."""
    ecg = tmp_path / "cohort" / "ecg"
    ecg.mkdir(parents=True)
    shutil.copy(cardiosoft_xml, ecg / "inside.xml")
    shutil.copy(cardiosoft_xml, tmp_path / "outside.xml")
    pd.DataFrame({"eid": ["a", "b"], "sex": [1, 0], "file": ["inside.xml", "../../outside.xml"]}).to_csv(
        tmp_path / "cohort" / "column.csv", index=False)
    pd.DataFrame({"eid": ["inside", "../../outside"], "sex": [1, 0]}).to_csv(tmp_path / "cohort" / "pattern.csv",
                                                                         index=False)
    sex = {"column": "sex", "male": 1, "female": 0}
    (tmp_path / "cohort" / "column.yaml").write_text(yaml.safe_dump(
        {"table": "column.csv", "id_column": "eid", "sex": sex, "ecg": {"column": "file", "dir": "ecg"}}))
    (tmp_path / "cohort" / "pattern.yaml").write_text(yaml.safe_dump(
        {"table": "pattern.csv", "id_column": "eid", "sex": sex, "ecg": {"dir": "ecg", "pattern": "{id}.xml"}}))
    for name in ("column", "pattern"):
        out = tmp_path / f"out-{name}"
        assert aiecg(["-q", "measure", str(tmp_path / "cohort" / f"{name}.yaml"), "--out", str(out),
                      "--workers", "1"]) == 0
        table = pd.read_csv(out / "measurements.csv", dtype={"record_id": str}).set_index("record_id")
        inside, outside = table.index
        assert table.loc[inside, "status"] == "ok", table.loc[inside, "reason"]
        assert table.loc[outside, "status"] == "read_error"
        assert "outside" in table.loc[outside, "reason"] and "ECG folder" in table.loc[outside, "reason"]
        assert pd.isna(table.loc[outside, "heart_rate_bpm"])


# ------------------------------------------------------------------------------------------ 8. CSV formula injection
FORMULA_ID = "=HYPERLINK(1)"


def _no_formula_cells(path) -> pd.DataFrame:
    """The CSV as a spreadsheet sees it: no cell may start with = + - @ tab or CR (numbers aside)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in raw.columns:
        assert not column.startswith(("=", "+", "@", "-", "\t", "\r")), column
        for cell in raw[column]:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), (column, cell)
            assert not cell.startswith("-") or cell.lstrip("-").replace(".", "", 1).replace("e", "", 1).isdigit(), cell
    return raw


def test_measure_neutralises_formula_ids_and_file_names_and_keeps_them_recoverable(cardiosoft_xml, tmp_path):
    from aiecg.csvfile import read_csv

    ecg = tmp_path / "ecg"
    ecg.mkdir()
    shutil.copy(cardiosoft_xml, ecg / f"{FORMULA_ID}.xml")
    shutil.copy(cardiosoft_xml, ecg / "@SUM(1+1).xml")
    assert aiecg(["-q", "measure", str(ecg), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    raw = _no_formula_cells(tmp_path / "out" / "measurements.csv")
    assert sorted(raw["record_id"]) == ["'=HYPERLINK(1)", "'@SUM(1+1)"]
    table = read_csv(tmp_path / "out" / "measurements.csv")
    assert sorted(table["record_id"]) == [FORMULA_ID, "@SUM(1+1)"]  # the exact values, back
    assert (table["status"] == "ok").all() and table["heart_rate_bpm"].dtype == float


# ------------------------------------------------------------------------------------------ 3. diverged training
def test_a_training_run_whose_loss_is_not_finite_stops_naming_the_epoch_and_writes_no_bundle(trained, capsys):
    cohort = str(trained / "data" / "cohort.yaml")
    capsys.readouterr()
    assert aiecg(["-q", "train", "--cohort", cohort, "--target", "INDEXED_MASS", "--epochs", "3", "--lr", "1e12",
                  "--out", str(trained / "runs"), "--name", "diverged"]) == 2
    line = _one_error_line(capsys, "train")
    assert "epoch 1: the validation loss is nan" in line and "Lower the learning rate (--lr; it was 1e+12" in line
    run = trained / "runs" / "diverged"
    assert not (run / "model.aiecg").exists() and not (run / "metrics.json").exists()
    assert not (run / "results.csv").exists()


def test_a_fine_tune_that_never_beats_its_starting_model_writes_no_bundle(trained, capsys):
    capsys.readouterr()
    out = trained / "runs" / "ft-diverged"
    assert aiecg(["-q", "finetune", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), "--cohort",
                  str(trained / "data" / "cohort.yaml"), "--out", str(out), "--head-lr", "1e12", "--epochs", "1",
                  "--stages", "1"]) == 2
    line = _one_error_line(capsys, "finetune")
    assert "fine-tuning never improved on the model it started from" in line
    assert "lower the learning rates (--head-lr / --block-lr)" in line
    assert not (out / "model.aiecg").exists() and not (out / "results.csv").exists()


def test_a_diverging_fine_tuning_stage_is_named_with_its_epoch():
    """In-process, on arrays: a loss that is NaN from the first batch (a NaN target) stops stage 0 at epoch 1."""
    import numpy as np
    import torch

    from aiecg.config import FinetuneConfig, FitConfig
    from aiecg.data.dataset import Arrays, ECGDataset
    from aiecg.errors import TrainingDiverged
    from aiecg.models import create_model
    from aiecg.train.finetune import staged_finetune
    from aiecg.train.losses import LogCoshLoss

    rng = np.random.default_rng(0)

    def arrays(n, bad=False):
        target = rng.normal(size=(n, 1)).astype(np.float32)
        if bad:
            target[0] = np.nan
        return Arrays(ecg=rng.normal(size=(n, 12, 200)).astype(np.float32), meta=np.zeros((n, 0), np.float32),
                      target=target, ids=np.arange(n).astype(str), is_male=np.zeros(n, np.int64))

    torch.manual_seed(0)
    model = create_model("fcn", 12, 200, 0, 1)
    with pytest.raises(TrainingDiverged, match=r"^fine-tuning stage 0, epoch 1: the training loss is nan .*"
                                               r"Lower the learning rate \(--head-lr / --block-lr; it was 5e-05"):
        staged_finetune(model, ECGDataset(arrays(16, bad=True)), ECGDataset(arrays(8)), LogCoshLoss(),
                        FitConfig(batch_size=8), FinetuneConfig(max_epochs_per_stage=2), progress=False)


# ------------------------------------------------------------------------------------------ 2. ONNX tied to its bundle
def _predict(trained, out, *extra, files=4):
    ecg = sorted((trained / "data" / "ecg").glob("*.xml"))[:files]
    return aiecg(["-q", "predict", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), *map(str, ecg),
                  "--out", str(out), "--clinical", str(trained / "data" / "cohort.csv"), "--id-column", "eid",
                  "--workers", "1", *extra])


@pytest.fixture(scope="module")
def exported(trained):
    """The bundle's own export, and the export of another bundle (the same model with one weight changed)."""
    import torch

    from aiecg.bundle import load_bundle, save_bundle

    own = trained / "fcn.onnx"
    assert aiecg(["-q", "export", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), "--onnx", str(own)]) == 0
    other = load_bundle(trained / "runs" / "fcn" / "model.aiecg")
    name = next(k for k, v in other.state_dict.items() if v.dtype == torch.float32 and v.numel() > 100)
    other.state_dict[name] = other.state_dict[name] * 1.01
    save_bundle(other, trained / "other.aiecg")
    foreign = trained / "other.onnx"
    assert aiecg(["-q", "export", "--bundle", str(trained / "other.aiecg"), "--onnx", str(foreign)]) == 0
    return own, foreign


def _damaged(own, target):
    """``own`` with 200 bytes flipped inside its largest weight: a file ONNX still parses, with other weights."""
    import onnx

    proto = onnx.load(str(own))
    weights = max(proto.graph.initializer, key=lambda t: len(t.raw_data)).raw_data
    data = bytearray(own.read_bytes())
    start = data.find(weights) + 16
    assert start > 16 and len(weights) > 216
    data[start:start + 200] = bytes(b ^ 0xFF for b in data[start:start + 200])
    target.write_bytes(bytes(data))
    return target


def test_predict_with_the_bundles_own_export_runs_and_matches_torch(trained, exported, capsys):
    own, _ = exported
    assert _predict(trained, trained / "torch.csv") == 0
    assert _predict(trained, trained / "onnx.csv", "--engine", "onnx", "--onnx", str(own)) == 0
    torch_rows, onnx_rows = pd.read_csv(trained / "torch.csv"), pd.read_csv(trained / "onnx.csv")
    assert (onnx_rows["status"] == "ok").all()
    pd.testing.assert_series_equal(onnx_rows["ilvm_pred"], torch_rows["ilvm_pred"], rtol=1e-4)


@pytest.mark.parametrize("case", ["damaged", "foreign", "junk", "truncated", "missing", "no metadata",
                                  "onnx without engine"])
def test_predict_refuses_an_onnx_file_that_is_not_this_bundles_intact_export(trained, exported, case, tmp_path,
                                                                              capsys):
    import onnx

    own, foreign = exported
    path = tmp_path / f"{case}.onnx"
    words = {"damaged": "checksum mismatch: the network in the file is damaged",
             "foreign": "is the export of another model", "junk": "is not a readable ONNX file",
             "truncated": "is not a readable ONNX file", "missing": "not found",
             "no metadata": "carries no aiecg export metadata",
             "onnx without engine": "is used only by --engine onnx"}[case]
    if case == "damaged":
        _damaged(own, path)
    elif case == "foreign":
        path = foreign
    elif case == "junk":
        path.write_bytes(b"\x08\x07junk" * 1000)
    elif case == "truncated":
        path.write_bytes(own.read_bytes()[: own.stat().st_size // 2])
    elif case == "no metadata":
        proto = onnx.load(str(own))
        del proto.metadata_props[:]
        onnx.save(proto, str(path))
    engine = [] if case == "onnx without engine" else ["--engine", "onnx"]
    capsys.readouterr()
    out = tmp_path / "pred.csv"
    assert _predict(trained, out, *engine, "--onnx", str(path)) == 2
    line = _one_error_line(capsys, "predict")
    assert words in line and str(path) in line, line
    assert not out.exists()


# ------------------------------------------------------------------------------------------ 4. one sex per row
def test_a_sex_missing_from_the_table_comes_from_the_ecg_header_for_every_output(trained, tmp_path):
    """The network, the threshold, the LR model and the interval all use the header's sex, and the row says so:
    the predictions equal those made with the sex in the table (the synthetic headers hold the true sex)."""
    from aiecg.bundle import load_bundle

    table = pd.read_csv(trained / "data" / "cohort.csv")
    ecg = sorted((trained / "data" / "ecg").glob("*.xml"))[:8]
    ids = [int(p.name.split("_")[0]) for p in ecg]
    chosen = table[table["eid"].isin(ids)]
    fill = load_bundle(trained / "runs" / "fcn" / "model.aiecg").encoder.fill["sex"]
    assert (chosen["sex"] != fill).any() and (chosen["sex"] == fill).any()  # both: imputation would be wrong once
    blank = table.copy()
    blank.loc[blank["eid"].isin(ids), "sex"] = None
    blank.to_csv(tmp_path / "blank.csv", index=False)
    runs = {}
    for name, clinical in (("table", trained / "data" / "cohort.csv"), ("header", tmp_path / "blank.csv")):
        assert aiecg(["-q", "predict", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), *map(str, ecg),
                      "--out", str(tmp_path / f"{name}.csv"), "--clinical", str(clinical), "--id-column", "eid",
                      "--workers", "1"]) == 0
        runs[name] = pd.read_csv(tmp_path / f"{name}.csv")
    with_table, from_header = runs["table"], runs["header"]
    assert (from_header["status"] == "ok").all()
    assert (with_table["sex_source"] == "table").all() and (from_header["sex_source"] == "ecg").all()
    truth = chosen.set_index("eid").loc[ids, "sex"].tolist()
    assert from_header["is_m"].tolist() == with_table["is_m"].tolist() == truth
    assert from_header["imputed"].fillna("").str.contains("sex").sum() == 0  # not imputed: from the header
    assert from_header["n_imputed"].tolist() == with_table["n_imputed"].tolist()
    for column in ("ilvm_pred", "ilvm_pred_lower", "ilvm_pred_upper", "lvh_pred_cutoff", "lvh_proba_lr"):
        pd.testing.assert_series_equal(from_header[column], with_table[column], rtol=1e-6, check_names=False)


def test_predict_excludes_a_non_numeric_clinical_value_with_its_reason(trained, tmp_path):
    table = pd.read_csv(trained / "data" / "cohort.csv").astype({"age": object})
    ecg = sorted((trained / "data" / "ecg").glob("*.xml"))[:2]
    first = int(ecg[0].name.split("_")[0])
    table.loc[table["eid"] == first, "age"] = "sixty"
    table.to_csv(tmp_path / "sixty.csv", index=False)
    assert aiecg(["-q", "predict", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), *map(str, ecg),
                  "--out", str(tmp_path / "p.csv"), "--clinical", str(tmp_path / "sixty.csv"), "--id-column", "eid",
                  "--workers", "1"]) == 0
    rows = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert rows["status"].tolist() == ["clinical_error", "ok"]
    assert rows.loc[0, "reason"] == "non-numeric value 'sixty' in clinical column 'age'"
    assert rows.loc[0, "ilvm_pred"] == ""


def test_predict_files_takes_one_folder_as_a_path(trained):
    from aiecg.workflows.predict import predict_files

    folder = trained / "data" / "ecg"
    rows = predict_files(trained / "runs" / "fcn" / "model.aiecg", str(folder),
                         clinical=trained / "data" / "cohort.csv", id_column="eid")
    assert sorted(rows["record_id"]) == sorted(p.stem for p in folder.glob("*.xml"))  # files, not characters


# ------------------------------------------------------------------------------------------ 5. plausibility
def _npz_copy(source, target, factor):
    """``source`` as a .npz file in mV with its signal times ``factor`` (10: a units error; -1: inverted)."""
    import numpy as np

    from aiecg.io import read_ecg

    ecg = read_ecg(source)
    np.savez(target, signal=ecg.signal * factor, fs=ecg.fs, leads=np.array(ecg.leads), units="mV")
    return target


def test_measure_rejects_a_units_error_and_an_inverted_recording_with_the_reason(cardiosoft_xml, tmp_path):
    files = [_npz_copy(cardiosoft_xml, tmp_path / f"{name}.npz", factor)
             for name, factor in (("as_is", 1), ("x10", 10), ("inverted", -1))]
    assert aiecg(["-q", "measure", *map(str, files), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    table = pd.read_csv(tmp_path / "out" / "measurements.csv", keep_default_na=False).set_index("record_id")
    assert table.loc["as_is", "status"] == "ok"
    assert table.loc["x10", "status"] == "qc_fail"
    assert table.loc["x10", "reason"].startswith("implausible amplitude: QRS of 20.1 mV peak to peak in lead V4")
    assert table.loc["inverted", "status"] == "qc_fail"
    assert table.loc["inverted", "reason"].startswith("every lead looks inverted")


def test_predict_gives_no_prediction_for_a_units_error(trained, tmp_path):
    ecg = sorted((trained / "data" / "ecg").glob("*.xml"))[0]
    eid = ecg.name.split("_")[0]
    files = [ecg, _npz_copy(ecg, tmp_path / f"{eid}_x10.npz", 10)]
    assert aiecg(["-q", "predict", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), *map(str, files),
                  "--out", str(tmp_path / "p.csv"), "--clinical", str(trained / "data" / "cohort.csv"),
                  "--id-column", "eid", "--workers", "1"]) == 0
    rows = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert rows["status"].tolist() == ["ok", "qc_fail"]
    assert rows.loc[1, "reason"].startswith("implausible amplitude") and rows.loc[1, "ilvm_pred"] == ""


# ------------------------------------------------------------------------------------------ 12. report labels
def test_report_renders_dollar_signs_in_labels_as_plain_text(trained, tmp_path):
    import json

    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "fcn", run)
    metrics = json.loads((run / "metrics.json").read_text())
    label = "fcn $x_{1 \\frac{a}{$ run"  # two dollars: mathtext would parse this, and choke on it
    metrics["run"] = label
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert aiecg(["-q", "report", str(run), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert label in page
    assert any(label in svg.read_text() for svg in (tmp_path / "report").rglob("*.svg"))  # drawn as typed


# ------------------------------------------------------------------------------------------ 11, 13. arguments, outputs
def _argument_cases(trained, tmp):
    """(command line, words of its one error line, the output path that must not appear)."""
    bundle, cohort = str(trained / "runs" / "fcn" / "model.aiecg"), str(trained / "data" / "cohort.yaml")
    ecg = str(sorted((trained / "data" / "ecg").glob("*.xml"))[0])
    clinical = ["--clinical", str(trained / "data" / "cohort.csv"), "--id-column", "eid"]
    (tmp / "a-file").write_text("")
    (tmp / "a-folder").mkdir()
    (tmp / "empty").mkdir()
    predict = ["predict", "--bundle", bundle, ecg, *clinical, "--out"]
    return {
        "predict batch 0": ([*predict, str(tmp / "p0.csv"), "--batch-size", "0"],
                            "--batch-size and --workers must be at least 1, got 0", tmp / "p0.csv"),
        "predict batch -5": ([*predict, str(tmp / "p5.csv"), "--batch-size", "-5"],
                             "--batch-size and --workers must be at least 1, got -5", tmp / "p5.csv"),
        "predict out a folder": ([*predict, str(tmp / "a-folder")],
                                 f"cannot write to --out {tmp / 'a-folder'}: it is a folder, not a file", None),
        "predict out under a file": ([*predict, str(tmp / "a-file" / "p.csv")],
                                     "a file is in the way of a folder", tmp / "a-file" / "p.csv"),
        "predict empty folder": (["predict", "--bundle", bundle, str(tmp / "empty"), *clinical, "--out",
                                  str(tmp / "pe.csv")], "no ECG files found in the inputs given", tmp / "pe.csv"),
        "measure unknown format": (["measure", ecg, "--out", str(tmp / "m1"), "--format", "nope"],
                                   "--format: unknown ECG format 'nope'; known formats: ", tmp / "m1"),
        "measure out a file": (["measure", ecg, "--out", str(tmp / "a-file")],
                               f"cannot write to --out {tmp / 'a-file'}: it is a file, not a folder", None),
        "export onnx a folder": (["export", "--bundle", bundle, "--onnx", str(tmp / "a-folder")],
                                 f"cannot write to --onnx {tmp / 'a-folder'}: it is a folder, not a file", None),
        "report out a file": (["report", str(trained / "runs" / "fcn"), "--out", str(tmp / "a-file")],
                              "it is a file, not a folder", None),
        "explain steps 0": (["explain", "--bundle", bundle, "--cohort", cohort, "--out", str(tmp / "x1"), "--steps",
                             "0"], "--steps must be at least 1", tmp / "x1"),
        "explain max participants -1": (["explain", "--bundle", bundle, "--cohort", cohort, "--out", str(tmp / "x2"),
                                         "--max-participants", "-1"], "--max-participants must be at least 2, got -1",
                                        tmp / "x2"),
        "finetune split fractions": (["finetune", "--bundle", bundle, "--cohort", cohort, "--out", str(tmp / "f1"),
                                      "--split-fractions", "0.9,0.9,0.9"],
                                     "--split-fractions 0.9,0.9,0.9: the train, validation and test shares must be",
                                     tmp / "f1"),
        "train out under a file": (["train", "--cohort", cohort, "--target", "INDEXED_MASS", "--out",
                                    str(tmp / "a-file"), "--name", "t"],
                                   f"--out {tmp / 'a-file'}: it is a file, not a folder",
                                   tmp / "a-file" / "t"),
    }


CASES_11_13 = ["predict batch 0", "predict batch -5", "predict out a folder", "predict out under a file",
               "predict empty folder", "measure unknown format", "measure out a file", "export onnx a folder",
               "report out a file", "explain steps 0", "explain max participants -1", "finetune split fractions",
               "train out under a file"]


@pytest.mark.parametrize("case", CASES_11_13)
def test_bad_arguments_and_output_locations_are_one_line_before_any_work(trained, case, tmp_path, capsys):
    argv, words, output = _argument_cases(trained, tmp_path)[case]
    capsys.readouterr()
    assert aiecg(["-q", *argv]) == 2
    line = _one_error_line(capsys, argv[0])
    assert words in line, line
    assert output is None or not output.exists()


def test_train_on_cuda_without_a_gpu_is_one_line_and_writes_nothing(trained, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    capsys.readouterr()
    assert aiecg(["-q", "train", "--cohort", str(trained / "data" / "cohort.yaml"), "--target", "INDEXED_MASS",
                  "--device", "cuda", "--out", str(tmp_path), "--name", "cuda"]) == 2
    assert "--device cuda was requested but no CUDA GPU is available; use --device cpu or auto" in _one_error_line(
        capsys, "train")
    assert not (tmp_path / "cuda").exists()


def test_a_full_disk_while_writing_is_one_line_and_leaves_no_partial_file(cardiosoft_xml, tmp_path, capsys,
                                                                           monkeypatch):
    """The disk fills up at the final write (simulated at its fsync): one line, no file, no temporary file."""
    import errno
    import os

    from aiecg import files

    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    capsys.readouterr()
    assert aiecg(["-q", "measure", str(cardiosoft_xml), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    assert _one_error_line(capsys, "measure") == "aiecg measure: error: the disk is full"
    assert list((tmp_path / "out").iterdir()) == []


def test_ctrl_c_is_one_line_and_exit_130(cardiosoft_xml, tmp_path, capsys, monkeypatch):
    from aiecg.workflows import measure

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(measure, "measure_files", interrupted)
    capsys.readouterr()
    assert aiecg(["-q", "measure", str(cardiosoft_xml), "--out", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["aiecg measure: interrupted"]


# ------------------------------------------------------------------------------------------ 7. tune resume
def test_a_restarted_tune_worker_continues_the_search_instead_of_repeating_its_trials(trained, tmp_path):
    """Two trials, then the same worker restarted on the same storage for two more: four different settings."""
    optuna = pytest.importorskip("optuna")

    from aiecg.train import hpo

    storage = f"journal://{tmp_path / 'study.log'}"
    base = ["-q", "tune", "--cohort", str(trained / "data" / "cohort.yaml"), "--search-only", "--epochs", "1",
            "--pruner", "none", "--storage", storage, "--out", str(tmp_path / "tune"), "--worker-id", "0"]
    assert aiecg([*base, "--trials", "2"]) == 0
    assert aiecg([*base, "--trials", "4"]) == 0
    trials = optuna.load_study(study_name="aiecg-tune", storage=hpo.open_storage(storage)).get_trials()
    settings = [tuple(sorted(t.params.items())) for t in trials]
    assert len(settings) == 4 and len(set(settings)) == 4, settings
    values = [t.value for t in trials]
    assert values[2] != values[0] and values[3] != values[1]


def test_sex_written_as_male_female_is_read_as_the_help_says_and_a_bad_code_reads_plainly(trained, tmp_path):
    """--sex-column takes 1/0 or male/female: the text codes give the predictions of the 1/0 codes; a code that
    is neither is a clinical_error naming the value as written (7, not np.int64(7))."""
    table = pd.read_csv(trained / "data" / "cohort.csv")
    ecg = sorted((trained / "data" / "ecg").glob("*.xml"))[:4]
    first = int(ecg[0].name.split("_")[0])
    text = table.astype({"sex": object})
    text["sex"] = table["sex"].map({1: "male", 0: "female"})
    text.to_csv(tmp_path / "text.csv", index=False)
    bad = table.copy()
    bad.loc[bad["eid"] == first, "sex"] = 7
    bad.to_csv(tmp_path / "bad.csv", index=False)
    runs = {}
    for name in ("text", "bad"):
        assert aiecg(["-q", "predict", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), *map(str, ecg),
                      "--out", str(tmp_path / f"{name}-p.csv"), "--clinical", str(tmp_path / f"{name}.csv"),
                      "--id-column", "eid", "--workers", "1"]) == 0
        runs[name] = pd.read_csv(tmp_path / f"{name}-p.csv", keep_default_na=False)
    assert _predict(trained, tmp_path / "codes.csv") == 0
    codes = pd.read_csv(tmp_path / "codes.csv", keep_default_na=False)
    assert (runs["text"]["status"] == "ok").all()
    pd.testing.assert_series_equal(runs["text"]["ilvm_pred"], codes["ilvm_pred"])
    assert runs["bad"].loc[0, "status"] == "clinical_error"
    assert runs["bad"].loc[0, "reason"] == "binary clinical column 'sex' value 7 is neither of ['0', '1']"


# ------------------------------------------------------------------------------------------ 6. outputs as one set
def test_measure_into_a_folder_of_an_earlier_run_leaves_no_stale_beats(cardiosoft_xml, tmp_path):
    ecg = tmp_path / "ecg"
    ecg.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(cardiosoft_xml, ecg / f"{name}.xml")
    out = tmp_path / "out"
    assert aiecg(["-q", "measure", str(ecg), "--beats", "--out", str(out), "--workers", "1"]) == 0
    assert pd.read_csv(out / "beats.csv")["file"].nunique() == 3
    assert aiecg(["-q", "measure", str(ecg / "a.xml"), "--out", str(out), "--workers", "1"]) == 0
    assert len(pd.read_csv(out / "measurements.csv")) == 1
    assert not (out / "beats.csv").exists()  # the 3-file beats.csv of the earlier run is gone


def test_report_killed_while_rerendering_leaves_no_stale_page(trained, tmp_path, monkeypatch):
    from aiecg.report import html

    out = tmp_path / "report"
    assert aiecg(["-q", "report", str(trained / "runs" / "fcn"), "--out", str(out)]) == 0
    assert (out / "index.html").exists()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill in the middle of drawing the figures

    monkeypatch.setattr(html, "_figure", killed)
    assert aiecg(["-q", "report", str(trained / "runs" / "fcn"), "--out", str(out)]) == 130
    assert not (out / "index.html").exists()


# ------------------------------------------------------------------------------------------ 10. non-regular files
def test_devices_pipes_and_folders_are_error_rows_at_once(cardiosoft_xml, tmp_path):
    """/dev/zero is not read to the end and a FIFO nobody writes to does not block: each is its own read_error."""
    import os

    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    table = pd.DataFrame({"eid": ["zero", "pipe", "good"], "sex": [1, 0, 1],
                          "file": ["/dev/zero", str(fifo), str(cardiosoft_xml)]})
    table.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"table": "t.csv", "id_column": "eid", "sex": {
        "column": "sex", "male": 1, "female": 0}, "ecg": {"column": "file"}}))
    assert aiecg(["-q", "measure", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    rows = pd.read_csv(tmp_path / "out" / "measurements.csv", keep_default_na=False).set_index("record_id")
    assert rows.loc["zero", "status"] == "read_error"
    assert rows.loc["zero", "reason"] == "not a regular file (a device, pipe or socket); pass an ECG file"
    assert rows.loc["pipe", "reason"] == "not a regular file (a device, pipe or socket); pass an ECG file"
    assert rows.loc["good", "status"] == "ok"


@pytest.mark.usefixtures("misbehaving_reader")
def test_a_hung_or_memory_exploding_record_is_one_error_row_in_measure_and_predict(trained, tmp_path, capsys):
    """--record-timeout and --max-memory-mb, as prepare has them (one mechanism: data/workers.py): the record is
    its error row with how to raise the limit, and the other files are measured or predicted."""
    from tests.integration.test_prepare import MARK

    good = sorted((trained / "data" / "ecg").glob("*.xml"))[0]
    for action in ("hang", "hog"):
        (tmp_path / f"{action}.bad").write_bytes(MARK + action.encode())
    files = [str(good), str(tmp_path / "hang.bad"), str(tmp_path / "hog.bad")]
    limits = ["--record-timeout", "2", "--max-memory-mb", "512", "--workers", "2"]
    reasons = {"hang": "timed out after 2 s; raise --record-timeout if such files are expected",
               "hog": "ran out of memory (each worker may use 512 MB more than at start; raise --max-memory-mb if "
                      "such files are expected)"}
    assert aiecg(["-q", "measure", *files, "--out", str(tmp_path / "m"), *limits]) == 0
    rows = pd.read_csv(tmp_path / "m" / "measurements.csv", keep_default_na=False).set_index("record_id")
    assert rows.loc[good.stem, "status"] == "ok"
    assert rows.loc[["hang", "hog"], "status"].tolist() == ["timed_out", "out_of_memory"]
    assert rows.loc[["hang", "hog"], "reason"].to_dict() == reasons
    assert aiecg(["-q", "predict", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), *files, "--clinical",
                  str(trained / "data" / "cohort.csv"), "--id-column", "eid", "--out", str(tmp_path / "p.csv"),
                  *limits]) == 0
    rows = pd.read_csv(tmp_path / "p.csv", keep_default_na=False).set_index("record_id")
    assert rows.loc[good.stem, "status"] == "ok" and rows.loc[good.stem, "ilvm_pred"] != ""
    assert rows.loc[["hang", "hog"], "status"].tolist() == ["timed_out", "out_of_memory"]
    assert rows.loc[["hang", "hog"], "reason"].to_dict() == reasons
    capsys.readouterr()
    assert aiecg(["-q", "measure", *files, "--out", str(tmp_path / "m2"), "--record-timeout", "-1"]) == 2
    assert "--record-timeout must be at least 0 (0: no limit)" in _one_error_line(capsys, "measure")


# ------------------------------------------------------------------------------------------ 13. damaged run files
REPORT_DAMAGE = {
    "metrics.json": ("[1, 2]", "metrics.json holds a list, not a mapping; re-run the step that wrote it"),
    "splits.json": ('{"train": 5', "splits.json is not valid JSON (Expecting ',' delimiter"),
    "splits.json ": ('{"train": 5}', "splits.json must map each split to a list of ids"),
    "config.yaml": ("a: [\n", "config.yaml is not valid YAML (while parsing a flow node)"),
    "epochs.csv": ("epoch,train_loss\n1,0.5\n", "epochs.csv lacks the column(s) ['val_loss']"),
    "explain.json": ("{", "explain.json is not valid JSON"),
}


@pytest.mark.parametrize("name", list(REPORT_DAMAGE))
def test_report_on_a_damaged_run_file_is_one_line_naming_it(trained, name, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "fcn", run)
    inputs = [str(run)]
    if name == "explain.json":
        (tmp_path / "explain").mkdir()
        inputs.append(str(tmp_path / "explain"))
        target = tmp_path / "explain" / name
    else:
        target = run / name.strip()
    text, words = REPORT_DAMAGE[name]
    target.write_text(text)
    capsys.readouterr()
    assert aiecg(["-q", "report", *inputs, "--out", str(tmp_path / "report")]) == 2
    line = _one_error_line(capsys, "report")
    assert str(target) in line and words in line, line
    assert not (tmp_path / "report" / "index.html").exists()


def test_report_on_truncated_attributions_or_predictions_without_a_value_is_one_line(trained, tmp_path, capsys):
    """A truncated attributions.npz and a results.csv whose predictions are all NaN are one line naming the file,
    before any figure is drawn; a few rows without a prediction are a note in the report."""
    from aiecg.report.runs import check_predictions

    explained = tmp_path / "explain"
    assert aiecg(["-q", "explain", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), "--cohort",
                  str(trained / "data" / "cohort.yaml"), "--out", str(explained), "--steps", "2", "--no-figures",
                  "--max-participants", "4"]) == 0
    npz = explained / "attributions.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    capsys.readouterr()
    assert aiecg(["-q", "report", str(trained / "runs" / "fcn"), str(explained), "--out", str(tmp_path / "r1")]) == 2
    line = _one_error_line(capsys, "report")
    assert f"{npz} is not a readable .npz file (BadZipFile" in line, line

    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "fcn", run)
    results = pd.read_csv(run / "results.csv", dtype={"eid": str})
    results.assign(ilvm_pred=float("nan")).to_csv(run / "results.csv", index=False)
    assert aiecg(["-q", "report", str(run), "--out", str(tmp_path / "r2")]) == 2
    line = _one_error_line(capsys, "report")
    assert f"{run / 'results.csv'}: column ilvm_pred holds no finite prediction in any of its {len(results)}" in line
    results.loc[results.index[:2], "ilvm_pred"] = float("nan")
    notes = []  # the report lists its run's notes (report/runs.py); checked here without drawing every figure
    check_predictions(run / "results.csv", results, notes)
    assert notes == [f"results.csv: 2 of {len(results)} rows have no finite ilvm_pred; check the step that wrote it"]


# ------------------------------------------------------------------------------------------ 14. temporary folders
def test_predict_makes_a_temporary_folder_only_to_export_on_the_fly_and_removes_it_at_once(trained, tmp_path,
                                                                                           monkeypatch):
    """A killed predict cannot leave /tmp/aiecg-onnx-* behind: the torch engine makes none, and the on-the-fly
    export's folder is gone before the first file is read."""
    import os
    import tempfile

    from aiecg.workflows import predict as predict_module

    made, real_mkdtemp = [], tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    def first_read(*args, **kwargs):
        assert not any(os.path.exists(p) for p in made), made  # gone before any file is read
        return real_run(*args, **kwargs)

    real_run = predict_module._run
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(predict_module, "_run", first_read)
    assert _predict(trained, tmp_path / "torch.csv", files=2) == 0
    assert made == []
    assert _predict(trained, tmp_path / "onnx.csv", "--engine", "onnx", files=2) == 0
    assert len(made) == 1 and "aiecg-onnx-" in made[0]
    assert (pd.read_csv(tmp_path / "onnx.csv")["status"] == "ok").all()


# ------------------------------------------------------------------------------------------ 13. forged bundles
def _forge(bundle, case):
    from aiecg.data.dataset import TargetScaling

    if case == "more contract leads than inputs":
        bundle.input_spec = {**bundle.input_spec, "leads": bundle.input_spec["leads"] + ["V1"] * 4}
    elif case == "unknown lead":
        bundle.input_spec = {**bundle.input_spec, "leads": ["I", "XX", *bundle.input_spec["leads"][2:]]}
    elif case == "short scaling":
        bundle.scaling = TargetScaling((), ())
    elif case == "zero scaling":
        bundle.scaling = TargetScaling((48.0,), (0.0,))
    elif case == "posthoc a list":
        bundle.thresholds = {**bundle.thresholds, "posthoc": [1, 2]}
    elif case == "junk conformal":
        bundle.thresholds = {**bundle.thresholds, "conformal": {"junk": 1}}
    return bundle


FORGED = {"more contract leads than inputs": "input_spec.leads", "unknown lead": "unknown lead 'XX'",
          "short scaling": "scaling must hold 1 finite means and positive SDs",
          "zero scaling": "scaling must hold 1 finite means and positive SDs",
          "posthoc a list": "thresholds.posthoc must be a mapping",
          "junk conformal": "conformal intervals are malformed"}


@pytest.mark.parametrize("case", list(FORGED))
def test_a_forged_bundle_with_a_recomputed_checksum_is_one_line(trained, case, tmp_path, capsys):
    from aiecg.bundle import load_bundle, save_bundle

    forged = tmp_path / "forged.aiecg"
    save_bundle(_forge(load_bundle(trained / "runs" / "fcn" / "model.aiecg"), case), forged)
    ecg = sorted((trained / "data" / "ecg").glob("*.xml"))[0]
    capsys.readouterr()
    assert aiecg(["-q", "predict", "--bundle", str(forged), str(ecg), "--out", str(tmp_path / "p.csv"), "--clinical",
                  str(trained / "data" / "cohort.csv"), "--id-column", "eid", "--workers", "1"]) == 2
    assert FORGED[case] in _one_error_line(capsys, "predict")
    assert not (tmp_path / "p.csv").exists()


def test_explain_killed_while_rewriting_leaves_no_summary_over_other_attributions(trained, tmp_path, monkeypatch):
    from aiecg.workflows import explain

    out = tmp_path / "explain"
    argv = ["-q", "explain", "--bundle", str(trained / "runs" / "fcn" / "model.aiecg"), "--cohort",
            str(trained / "data" / "cohort.yaml"), "--out", str(out), "--steps", "2", "--no-figures"]
    assert aiecg(argv) == 0
    assert (out / "explain.json").exists() and (out / "attributions.npz").exists()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill while the new attributions are written

    monkeypatch.setattr(explain.np, "savez_compressed", killed)
    assert aiecg(argv) == 130
    assert not (out / "explain.json").exists()  # no summary that could describe the wrong attributions
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_the_sex_code_handed_to_the_encoder_is_the_encoders_own(trained):
    """Codes the encoder knows pass unchanged (the table's coding is trusted, as before); text and header-filled
    values become the encoder's code for that sex, for a model trained on 1/0 and one trained on M/F."""
    import copy
    import math

    from aiecg.bundle import load_bundle
    from aiecg.data.features import encoder_sex_code

    bundle = load_bundle(trained / "runs" / "fcn" / "model.aiecg")
    assert bundle.encoder.binary_positive["sex"] == 1
    for is_m, value, code in ((1, 1, 1), (0, 0, 0), (1, "male", 1), (0, "female", 0), (1, math.nan, 1),
                              (0, math.nan, 0), (0, "F", 0)):
        assert str(encoder_sex_code(bundle.encoder, "sex", is_m, value)) == str(code), (is_m, value)  # 1/0 table
    letters = copy.deepcopy(bundle)
    letters.encoder.binary_positive["sex"], letters.encoder.fill["sex"] = "M", "F"
    for is_m, value, code in ((1, "M", "M"), (0, "F", "F"), (1, math.nan, "M"), (0, math.nan, "F"),
                              (0, "female", "F"), (1, 1, "M")):
        assert encoder_sex_code(letters.encoder, "sex", is_m, value) == code, (is_m, value)


# ------------------------------------------------------------------------------------------ 9. damaged journal
def test_tune_on_a_damaged_journal_is_one_line(trained, tmp_path, capsys):
    pytest.importorskip("optuna")
    journal = tmp_path / "study.log"
    journal.write_text("junk, not a journal\n")
    capsys.readouterr()
    assert aiecg(["-q", "tune", "--cohort", str(trained / "data" / "cohort.yaml"), "--search-only", "--trials", "1",
                  "--epochs", "1", "--storage", f"journal://{journal}", "--out", str(tmp_path / "tune")]) == 2
    line = _one_error_line(capsys, "tune")
    assert f"the journal {journal} is damaged (JSONDecodeError" in line and "restore it from a copy" in line
