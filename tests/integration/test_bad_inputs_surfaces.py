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
