"""The command line end to end on the session's synthetic cohort (60 participants, 2 epochs; tests/conftest.py):
its store and trained runs are shared with other modules, so every output goes to tmp_path."""

import json

import numpy as np
import pandas as pd
import pytest

from aiecg.bundle import load_bundle
from aiecg.cli import main
from aiecg.data.splits import Splits

pytestmark = pytest.mark.integration


def test_prepare_writes_a_complete_store(synth_cohort):
    index = pd.read_parquet(synth_cohort / "store" / "index.parquet")
    median = np.load(synth_cohort / "store" / "median.npy")
    assert len(index) == 60 and median.shape == (60, 12, 400) and np.isfinite(median).all()
    assert (index["status"] == "ok").sum() >= 50
    errors = pd.read_csv(synth_cohort / "store" / "errors.csv")
    assert set(errors["id"].astype(str)) == set(index.loc[index["status"] != "ok", "id"])


def test_train_then_evaluate_end_to_end(synth_cohort, ilvm_run, tmp_path, capsys):
    run = ilvm_run  # aiecg train --target INDEXED_MASS --epochs 2 --name fcn
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
    assert comparison["reference"].sum() == 1 and comparison["n"].max() == len(results)
    assert comparison.loc[comparison["reference"], "kind"].tolist() == ["model"]
    assert (run / "comparison.md").read_text().startswith("# fcn (INDEXED_MASS)")
    regression = pd.read_csv(run / "comparison_regression.csv")
    assert {"SVR ecg+clinical", "SVR ecg", "Linear clinical-only"} <= set(regression["name"])
    assert len(pd.read_csv(run / "epochs.csv")) == 2
    capsys.readouterr()

    # evaluating the saved bundle on the same cohort reproduces the saved predictions exactly
    assert main(["-q", "evaluate", "--bundle", str(run / "model.aiecg"), "--cohort",
                 str(synth_cohort / "cohort.yaml"), "--out", str(tmp_path / "eval")]) == 0
    again = pd.read_csv(tmp_path / "eval" / "results.csv")
    pd.testing.assert_frame_equal(again, results)
    assert load_bundle(run / "model.aiecg").n_meta == 16


def test_lvh_target_ecg_only(lvh_ecg_only_run):
    # aiecg train --target LVH --excl-meta --epochs 2 --name lvh
    results = pd.read_csv(lvh_ecg_only_run / "results.csv")
    assert {"lvh_true", "lvh_proba", "lvh_pred"} <= set(results.columns)
    assert results["lvh_proba"].between(0, 1).all()
    assert load_bundle(lvh_ecg_only_run / "model.aiecg").n_meta == 0


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["-q", "train", "--cohort", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "runs")]) == 2
    assert "missing.yaml not found" in capsys.readouterr().err


def test_class_rebalancing_of_a_continuous_target_is_refused(synth_cohort, tmp_path, capsys):
    assert main(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--target", "INDEXED_MASS",
                 "--sampling", "oversample", "--out", str(tmp_path / "runs"), "--name", "bad"]) == 2
    assert "target INDEXED_MASS is continuous" in capsys.readouterr().err


def test_beat_expansion_adds_training_beats_of_lvh_participants_only(synth_cohort, tmp_path):
    from aiecg.data.store import Store

    assert main(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--target", "LVH",
                 "--beat-expansion", "--epochs", "1", "--out", str(tmp_path / "runs"), "--name", "beats"]) == 0
    run = tmp_path / "runs" / "beats"
    training = load_bundle(run / "model.aiecg").training
    splits = Splits.load(run)
    cohort = pd.read_parquet(synth_cohort / "cohort.parquet").astype({"eid": str}).set_index("eid")
    store = Store.open(synth_cohort / "store")
    usable = store.usable_ids
    lvh_train = [i for i in splits.train if cohort.loc[i, "lvh"] == 1 and i in usable]
    expected_beats = sum(len(store.beats_of(i, ["I"])) for i in lvh_train)
    assert expected_beats > 0
    assert training["n_train_samples"] == len(splits.train) + expected_beats


def test_every_run_config_field_is_a_flag_and_lands_in_config_yaml(synth_cohort, tmp_path):
    import yaml

    from aiecg.cli import build_parser
    from aiecg.cliopts import DEST_PREFIX
    from aiecg.config import FitConfig, RunConfig

    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    dests = {a.dest for a in train._actions}
    import dataclasses

    for field in dataclasses.fields(RunConfig):
        if field.name != "fit":
            assert f"{DEST_PREFIX}{field.name}" in dests, field.name
    for field in dataclasses.fields(FitConfig):
        if field.name != "augment":
            assert f"{DEST_PREFIX}fit__{field.name}" in dests, field.name
    assert main(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--target", "INDEXED_MASS",
                 "--epochs", "1", "--lr", "0.003", "--batch-size", "8", "--leads", "I,II,V1,V2,V3,V4,V5,V6",
                 "--target-prevalence", "0.02", "--augment-transforms", "noise={sd_mv: 0.02}", "--no-compare",
                 "--model-kwargs", "conv_dropout=0.2", "--device", "cpu", "--out", str(tmp_path / "runs"),
                 "--name", "flags"]) == 0
    saved = yaml.safe_load((tmp_path / "runs" / "flags" / "config.yaml").read_text())
    assert saved["fit"]["lr"] == 0.003 and saved["fit"]["batch_size"] == 8 and saved["target_prevalence"] == 0.02
    assert saved["fit"]["augment"]["transforms"]["noise"] == {"sd_mv": 0.02}
    assert saved["model_kwargs"] == {"conv_dropout": 0.2}
    bundle = load_bundle(tmp_path / "runs" / "flags" / "model.aiecg")
    assert bundle.model_kwargs["conv_dropout"] == 0.2 and bundle.model_kwargs["filters"] == [128, 256, 128]
    assert bundle.input_spec["preprocessing"]["filters"]["notch_hz"] == 50.0
    metrics = json.loads((tmp_path / "runs" / "flags" / "metrics.json").read_text())
    assert metrics["test"]["prevalence"]["target"] == 0.02
    assert 0 <= metrics["test"]["prevalence"]["ppv_at_target"]["estimate"] <= 1


def test_tune_takes_every_run_config_field_of_the_run_its_trials_start_from(tmp_path):
    import dataclasses

    from aiecg.cli import _run_config, build_parser
    from aiecg.cliopts import DEST_PREFIX
    from aiecg.config import FitConfig, RunConfig

    parser = build_parser()
    tune = parser._subparsers._group_actions[0].choices["tune"]
    dests = {a.dest for a in tune._actions}
    own = {"out", "name"}  # the search's --out is its directory; trials are named by Optuna
    for field in dataclasses.fields(RunConfig):
        if field.name not in own | {"fit"}:
            assert f"{DEST_PREFIX}{field.name}" in dests, field.name
    for field in dataclasses.fields(FitConfig):
        if field.name not in ("augment", "max_epochs"):  # --epochs is the search's per-trial maximum
            assert f"{DEST_PREFIX}fit__{field.name}" in dests, field.name
    args = parser.parse_args(["tune", "--cohort", "c.yaml", "--weight-decay", "0.01", "--sampling", "oversample",
                              "--augment-transforms", "noise={sd_mv: 0.03}", "--no-excl-meta", "--epochs", "7",
                              "--out", str(tmp_path)])
    base = _run_config(args)
    assert base.fit.weight_decay == 0.01 and base.fit.sampling == "oversample" and base.excl_meta is False
    assert base.fit.augment.transforms["noise"] == {"sd_mv": 0.03} and args.epochs == 7 and args.out == str(tmp_path)
    assert main(["-q", "tune", "--trials", "1", "--out", str(tmp_path)]) == 2  # no cohort: one line, exit 2


def test_a_store_prepared_with_other_settings_is_refused_with_one_line(synth_cohort, ilvm_run, tmp_path, capsys):
    cohort = str(synth_cohort / "cohort.yaml")
    other = tmp_path / "store_60hz"
    assert main(["-q", "prepare", "--cohort", cohort, "--out", str(other), "--mains", "60", "--no-beats",
                 "--workers", "2"]) == 0
    capsys.readouterr()
    bundle = str(ilvm_run / "model.aiecg")  # trained on the default store: 50 Hz mains notch
    assert main(["-q", "evaluate", "--bundle", bundle, "--cohort", cohort, "--store", str(other),
                 "--out", str(tmp_path / "eval_60")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "filters.notch_hz is 60.0 there, the model was trained with 50.0" in err
    assert "--notch-hz 50.0" in err and not (tmp_path / "eval_60" / "results.csv").exists()
    assert main(["-q", "finetune", "--bundle", bundle, "--cohort", cohort, "--store", str(other),
                 "--out", str(tmp_path / "ft_60")]) == 2
    assert "notch_hz" in capsys.readouterr().err


def test_an_lvh_column_coded_1_2_ends_at_once_naming_the_column(synth_cohort, tmp_path, capsys):
    import yaml

    table = pd.read_csv(synth_cohort / "cohort.csv")
    table["lvh"] = table["lvh"] + 1
    table.to_csv(tmp_path / "cohort_codes.csv", index=False)
    mapping = yaml.safe_load((synth_cohort / "cohort.yaml").read_text())
    mapping["table"] = str(tmp_path / "cohort_codes.csv")
    bad = tmp_path / "cohort_codes.yaml"
    bad.write_text(yaml.safe_dump(mapping))
    capsys.readouterr()
    assert main(["-q", "train", "--cohort", str(bad), "--store", str(synth_cohort / "store"),
                 "--target", "LVH", "--epochs", "1", "--out", str(tmp_path / "runs"), "--name", "codes"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'lvh'" in err and "['1', '2']" in err and "0 = no LVH" in err
    assert not (tmp_path / "runs" / "codes" / "model.aiecg").exists()


@pytest.mark.parametrize("target", ["HN", "INDEXED_MASS_VOL"])
def test_multiclass_and_two_output_targets_through_evaluate(synth_cohort, tmp_path, target):
    cohort = str(synth_cohort / "cohort.yaml")
    name = target.lower()
    assert main(["-q", "train", "--cohort", cohort, "--target", target, "--epochs", "1", "--no-compare",
                 "--out", str(tmp_path / "runs"), "--name", name]) == 0
    run = tmp_path / "runs" / name
    assert main(["-q", "evaluate", "--bundle", str(run / "model.aiecg"), "--cohort", cohort,
                 "--out", str(tmp_path / f"eval_{name}")]) == 0
    results = pd.read_csv(tmp_path / f"eval_{name}" / "results.csv")
    pd.testing.assert_frame_equal(results, pd.read_csv(run / "results.csv"))
    metrics = json.loads((tmp_path / f"eval_{name}" / "metrics.json").read_text())["test"]
    if target == "HN":
        probabilities = results[[c for c in results if c.startswith("hn_proba_")]].to_numpy()
        assert probabilities.shape[1] == 4 and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
        assert 0 <= metrics["accuracy"] <= 1
    else:
        assert {"ilvm_true", "ilvm_pred", "ilvedv_true", "ilvedv_pred"} <= set(results.columns)
        assert np.isfinite(metrics["ilvedv"]["mae"]["estimate"])


def test_finetune_takes_device_epochs_seed_and_writes_its_config(synth_cohort, ilvm_run, tmp_path):
    import yaml

    cohort = str(synth_cohort / "cohort.yaml")
    out = tmp_path / "runs" / "tuned"
    assert main(["-q", "finetune", "--bundle", str(ilvm_run / "model.aiecg"), "--cohort", cohort,
                 "--out", str(out), "--epochs", "1", "--stages", "2", "--seed", "5", "--device", "cpu",
                 "--head-lr", "0.001"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seed"] == 5 and saved["device"] == "cpu" and saved["finetune"]["max_epochs_per_stage"] == 1
    assert saved["finetune"]["head_lr"] == 0.001 and saved["finetune"]["stages"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["stages"]) == 2 and "test_untuned" in metrics
    assert metrics["kept_stage"] == min(range(2), key=lambda i: metrics["stages"][i]["best_val_loss"])
    training = load_bundle(out / "model.aiecg").training
    assert training["finetuned_from"].endswith("model.aiecg")
    train_ids = (out / "train_ids.txt").read_text().split()
    assert training["finetune_n_train"] == len(train_ids) > 0  # the fine-tuning cohort's, not the source's
    lvh = pd.read_csv(synth_cohort / "cohort.csv", dtype={"eid": str}).set_index("eid").loc[train_ids, "lvh"]
    assert training["finetune_lvh_prevalence"] == pytest.approx(lvh.mean())
