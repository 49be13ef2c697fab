"""The command line end to end on a tiny synthetic cohort (about 60 participants, 2 epochs)."""

import json

import numpy as np
import pandas as pd
import pytest

from aiecg.bundle import load_bundle
from aiecg.cli import main
from aiecg.data.splits import Splits

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    assert main(["-q", "synth", "--out", str(data), "--n", "60", "--lvh-prevalence", "0.25", "--seed", "3",
                 "--workers", "2"]) == 0
    assert main(["-q", "prepare", "--cohort", str(data / "cohort.yaml"), "--workers", "2"]) == 0
    return root


def test_prepare_writes_a_complete_store(tiny):
    index = pd.read_parquet(tiny / "data" / "store" / "index.parquet")
    median = np.load(tiny / "data" / "store" / "median.npy")
    assert len(index) == 60 and median.shape == (60, 12, 400) and np.isfinite(median).all()
    assert (index["status"] == "ok").sum() >= 50
    errors = pd.read_csv(tiny / "data" / "store" / "errors.csv")
    assert set(errors["id"].astype(str)) == set(index.loc[index["status"] != "ok", "id"])


def test_train_then_evaluate_end_to_end(tiny, capsys):
    runs = tiny / "runs"
    assert main(["-q", "train", "--cohort", str(tiny / "data" / "cohort.yaml"), "--target", "INDEXED_MASS",
                 "--epochs", "2", "--out", str(runs), "--name", "fcn"]) == 0
    run = runs / "fcn"
    for name in ("config.yaml", "splits.json", "encoder.json", "epochs.csv", "model.aiecg", "results.csv",
                 "results_val.csv", "metrics.json", "exclusions.csv"):
        assert (run / name).exists(), name
    results = pd.read_csv(run / "results.csv")
    assert list(results.columns) == ["eid", "is_m", "lvh_true", "ilvm_true", "ilvm_pred", "lvh_pred_cutoff",
                                     "lvh_proba_lr", "lvh_proba_prioradj_lr"]
    assert results["lvh_proba_lr"].between(0, 1).all()
    assert np.isfinite(results[["ilvm_true", "ilvm_pred"]].to_numpy()).all()
    splits = Splits.load(run)
    assert sorted(results["eid"].astype(str)) == sorted(splits.test)
    assert not set(splits.train) & set(splits.test) and not set(splits.val) & set(splits.test)
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["ilvm"]["mae"]["estimate"]) and len(metrics["clinical_features"]) == 16
    low, high = metrics["test"]["ilvm"]["mae"]["low"], metrics["test"]["ilvm"]["mae"]["high"]
    assert low <= metrics["test"]["ilvm"]["mae"]["estimate"] <= high
    comparison = pd.read_csv(run / "comparison.csv")
    assert {"Sokolow-Lyon", "Cornell voltage", "Cornell product", "Peguero-Lo Presti", "SVM ecg+clinical",
            "SVM ecg", "Logistic clinical-only"} <= set(comparison["name"])
    assert comparison["best"].sum() == 1 and comparison["n"].nunique() == 1
    assert (run / "comparison.md").read_text().startswith("# fcn (INDEXED_MASS)")
    regression = pd.read_csv(run / "comparison_regression.csv")
    assert {"SVR ecg+clinical", "SVR ecg", "Linear clinical-only"} <= set(regression["name"])
    assert len(pd.read_csv(run / "epochs.csv")) == 2
    capsys.readouterr()

    # evaluating the saved bundle on the same cohort reproduces the saved predictions exactly
    assert main(["-q", "evaluate", "--bundle", str(run / "model.aiecg"), "--cohort",
                 str(tiny / "data" / "cohort.yaml"), "--out", str(tiny / "eval")]) == 0
    again = pd.read_csv(tiny / "eval" / "results.csv")
    pd.testing.assert_frame_equal(again, results)
    assert load_bundle(run / "model.aiecg").n_meta == 16


def test_lvh_target_ecg_only(tiny):
    assert main(["-q", "train", "--cohort", str(tiny / "data" / "cohort.yaml"), "--target", "LVH", "--excl-meta",
                 "--epochs", "2", "--out", str(tiny / "runs"), "--name", "lvh"]) == 0
    results = pd.read_csv(tiny / "runs" / "lvh" / "results.csv")
    assert {"lvh_true", "lvh_proba", "lvh_pred"} <= set(results.columns)
    assert results["lvh_proba"].between(0, 1).all()
    assert load_bundle(tiny / "runs" / "lvh" / "model.aiecg").n_meta == 0


def test_errors_are_reported_not_raised(tiny, capsys):
    assert main(["-q", "train", "--cohort", str(tiny / "missing.yaml"), "--out", str(tiny / "runs")]) == 2
    assert "missing.yaml not found" in capsys.readouterr().err


def test_class_rebalancing_of_a_continuous_target_is_refused(tiny, capsys):
    assert main(["-q", "train", "--cohort", str(tiny / "data" / "cohort.yaml"), "--target", "INDEXED_MASS",
                 "--sampling", "oversample", "--out", str(tiny / "runs"), "--name", "bad"]) == 2
    assert "target INDEXED_MASS is continuous" in capsys.readouterr().err


def test_beat_expansion_adds_training_beats_of_lvh_participants_only(tiny):
    from aiecg.data.store import Store

    assert main(["-q", "train", "--cohort", str(tiny / "data" / "cohort.yaml"), "--target", "LVH",
                 "--beat-expansion", "--epochs", "1", "--out", str(tiny / "runs"), "--name", "beats"]) == 0
    run = tiny / "runs" / "beats"
    training = load_bundle(run / "model.aiecg").training
    splits = Splits.load(run)
    cohort = pd.read_parquet(tiny / "data" / "cohort.parquet").astype({"eid": str}).set_index("eid")
    store = Store.open(tiny / "data" / "store")
    usable = store.usable_ids
    lvh_train = [i for i in splits.train if cohort.loc[i, "lvh"] == 1 and i in usable]
    expected_beats = sum(len(store.beats_of(i, ["I"])) for i in lvh_train)
    assert expected_beats > 0
    assert training["n_train_samples"] == len(splits.train) + expected_beats
