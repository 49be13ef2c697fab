"""The reference README's five example commands, run as written through train.py on tiny synthetic cohorts: the
session's cohort (tests/conftest.py) as UK Biobank and a shifted one as SHIP."""

import json

import pandas as pd
import pytest
import train as train_py

from aiecg.bundle import load_bundle
from aiecg.cli import main as aiecg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ship(tmp_path_factory):
    """An external cohort: another device and population (``--shift``), 60 participants, prepared."""
    data = tmp_path_factory.mktemp("trainpy") / "ship"
    assert aiecg(["-q", "synth", "--out", str(data), "--n", "60", "--lvh-prevalence", "0.3", "--workers", "2",
                  "--shift", "--seed", "5"]) == 0
    assert aiecg(["-q", "prepare", "--cohort", str(data / "cohort.yaml"), "--workers", "2"]) == 0
    return data


def test_reference_examples_run_as_written(synth_cohort, ship, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = ["--data", str(synth_cohort / "cohort.yaml"), "--ext_data", str(ship / "cohort.yaml"), "--epochs", "1"]
    examples = [
        '--verbose --save UKB_iLVM --target INDEXED_MASS --train --recalib',
        '--verbose --save UKB_LVH_ecgonly --target LVH --train --excl_meta',
        '--verbose --save UKB_LVH_r34 --soto2022 resnet34 --target LVH --train',
        '--save_results --verbose --target INDEXED_MASS --load UKB_iLVM.aiecg',
        '--save_results --verbose --target INDEXED_MASS --load UKB_iLVM.aiecg --train --ext_tune --save UKB_iLVM.SHIP',
    ]
    for example in examples:
        assert train_py.main(example.split() + data) == 0, example
    capsys.readouterr()
    assert load_bundle("UKB_LVH_r34.aiecg").model_name == "resnet34"
    assert load_bundle("UKB_LVH_ecgonly.aiecg").n_meta == 0
    evaluation = pd.read_csv("runs/UKB_iLVM/evaluation/results.csv")
    pd.testing.assert_frame_equal(evaluation, pd.read_csv("runs/UKB_iLVM/results.csv"))  # --load reproduces
    tuned = json.loads((tmp_path / "runs" / "UKB_iLVM.SHIP" / "metrics.json").read_text())
    assert {"test_untuned", "test", "stages"} <= set(tuned)
    assert len(tuned["stages"]) == len(load_bundle("UKB_iLVM.aiecg").build_model().parameter_groups())
    assert load_bundle("UKB_iLVM.SHIP.aiecg").training["finetuned_from"] == "UKB_iLVM.aiecg"


def test_flags_that_conflict_or_are_missing_fail_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        train_py.main(["--target", "LVH"])
    assert "nothing to do" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_py.main(["--recalib", "--load", "model.aiecg"])
    assert "--recalib is fitted while training" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_py.main(["--train", "--frobnicate"])
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
