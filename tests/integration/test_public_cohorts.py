"""Public cohorts end to end through the command line: cohort -> prepare -> train (LVH, 2 epochs) -> evaluate.

PTB-XL: the 30 shared records with the predefined folds (train 21, val 5 = fold 9, test 4 = fold 10; the three
LVH cases all sit in training folds, so the test split has no case and its AUROC is undefined: the whole cohort
is evaluated as well). CinC 2021: the 50 sample records with the seeded, LVH-stratified 70/15/15 split.
"""

import json

import numpy as np
import pandas as pd
import pytest

from aiecg.cli import main
from aiecg.data.splits import Splits

pytestmark = pytest.mark.integration


def _run(argv, capsys):
    capsys.readouterr()
    assert main(["-q", *argv]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _prepare_train_evaluate(data, tmp_path, capsys, status_counts, extra_train=()):
    cohort = str(data / "cohort.yaml")
    prepared = _run(["prepare", "--cohort", cohort, "--workers", "2"], capsys)
    assert prepared["status_counts"] == status_counts
    _run(["train", "--cohort", cohort, "--target", "LVH", "--epochs", "2", "--out", str(tmp_path / "runs"),
          "--name", "lvh", *extra_train], capsys)
    run = tmp_path / "runs" / "lvh"
    results = pd.read_csv(run / "results.csv")
    assert {"lvh_true", "lvh_proba", "lvh_pred"} <= set(results.columns)
    assert np.isfinite(results["lvh_proba"]).all() and results["lvh_proba"].between(0, 1).all()
    evaluated = _run(["evaluate", "--bundle", str(run / "model.aiecg"), "--cohort", cohort,
                      "--out", str(tmp_path / "eval_test")], capsys)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "eval_test" / "results.csv"), results)
    everyone = _run(["evaluate", "--bundle", str(run / "model.aiecg"), "--cohort", cohort, "--split", "all",
                     "--out", str(tmp_path / "eval_all")], capsys)
    assert everyone["test"]["lvh_cases"] == 3 and np.isfinite(everyone["test"]["lvh_auroc"]["estimate"])
    return run, results, evaluated, everyone


def test_ptbxl_end_to_end_with_predefined_folds(shared_data, tmp_path, capsys):
    data = tmp_path / "ptbxl"
    built = _run(["cohort", "ptbxl", "--root", str(shared_data / "ptbxl"), "--out", str(data)], capsys)
    assert (built["n_records"], built["n_lvh"]) == (30, 3)
    run, results, _, everyone = _prepare_train_evaluate(data, tmp_path, capsys, {"ok": 30})
    table = pd.read_csv(data / "cohort.csv").astype({"ecg_id": str}).set_index("ecg_id")
    splits = Splits.load(run)
    assert sorted(splits.test) == sorted(table.index[table["strat_fold"] == 10])
    assert sorted(splits.val) == sorted(table.index[table["strat_fold"] == 9])
    assert sorted(results["eid"].astype(str)) == sorted(splits.test)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split_sizes"] == {"train": 21, "val": 5, "test": 4}
    assert metrics["clinical_features"] == ["sex", "age", "height", "weight", "bmi", "bsa"]
    assert everyone["test"]["n"] == 30


def test_cinc_folder_end_to_end_with_seeded_split(shared_data, tmp_path, capsys):
    data = tmp_path / "cinc"
    built = _run(["cohort", "wfdb-folder", "--folder", str(shared_data / "cinc2021"), "--out", str(data)], capsys)
    assert (built["n_records"], built["n_lvh"]) == (50, 3)
    run, results, _, everyone = _prepare_train_evaluate(data, tmp_path, capsys, {"ok": 47, "qc_fail": 3},
                                                     ["--excl-meta"])
    # 47 usable: JS20004 and JS20007 fail beat QC (flat V2, noisy V6); JS20008 too, and is 5 years old
    exclusions = pd.read_csv(run / "exclusions.csv")
    assert sorted(exclusions["id"].astype(str).unique()) == ["JS20004", "JS20007", "JS20008"]
    splits = Splits.load(run)
    assert len(splits.train) + len(splits.val) + len(splits.test) == everyone["test"]["n"] == 47
    assert not set(splits.train) & set(splits.test) and not set(splits.val) & set(splits.test)
    assert len(results) == len(splits.test)
