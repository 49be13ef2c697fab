"""``evaluate_bundle`` where a bundle meets a cohort that maps less than the model outputs."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from aiecg.errors import CohortError
from aiecg.workflows.evaluate import evaluate_bundle


def _lvh_only_cohort(synth_cohort, folder, keep_lvh=True):
    """The session cohort's participants and ECGs, with an LVH label (or none) and no LV mass columns."""
    mapping = yaml.safe_load((synth_cohort / "cohort.yaml").read_text())
    table = pd.read_parquet(synth_cohort / mapping["table"])
    table = table.drop(columns=[c for name, c in mapping["targets"].items() if name != "LVH" or not keep_lvh])
    folder.mkdir()
    table.to_parquet(folder / "cohort.parquet")
    mapping["targets"] = {"LVH": mapping["targets"]["LVH"]} if keep_lvh else {}
    mapping["ecg"]["dir"] = str(synth_cohort)
    (folder / "cohort.yaml").write_text(yaml.safe_dump(mapping))
    return folder / "cohort.yaml"


def test_an_indexed_mass_model_is_scored_on_a_cohort_with_lvh_labels_only(synth_cohort, ilvm_run, tmp_path):
    cohort = _lvh_only_cohort(synth_cohort, tmp_path / "lvh_only")
    metrics = evaluate_bundle(ilvm_run / "model.aiecg", cohort, synth_cohort / "store", tmp_path / "eval",
                              split="all", n_resamples=50)
    assert metrics["unscored"]["outputs"] == ["INDEXED_MASS"]
    test = metrics["test"]
    assert "ilvm" not in test and test["lvh_cases"] >= 2 and test["lvh_score"] == "lvh_proba_lr"
    assert 0 <= test["lvh_at_validation_youden"]["auroc"]["estimate"] <= 1
    results = pd.read_csv(tmp_path / "eval" / "results.csv")
    assert results["ilvm_true"].isna().all() and results["lvh_true"].notna().all()
    assert results["ilvm_pred"].notna().all() and results["lvh_proba_lr"].notna().all()
    assert "conformal" not in metrics and "regression" not in metrics["comparison"]
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["unscored"] == metrics["unscored"]


def test_a_cohort_without_the_target_or_an_lvh_label_is_refused_before_anything_is_written(synth_cohort, ilvm_run,
                                                                                           tmp_path):
    cohort = _lvh_only_cohort(synth_cohort, tmp_path / "no_labels", keep_lvh=False)
    with pytest.raises(CohortError, match="target INDEXED_MASS is not mapped.*nor LVH"):
        evaluate_bundle(ilvm_run / "model.aiecg", cohort, synth_cohort / "store", tmp_path / "eval", split="all")
    assert not (tmp_path / "eval").exists()


def test_a_training_run_saves_the_curves_the_report_draws(ilvm_run):
    roc = pd.read_csv(ilvm_run / "roc_curves.csv")
    assert set(roc["kind"]) == {"model", "criterion", "baseline"} and roc["fpr"].between(0, 1).all()
    band = pd.read_csv(ilvm_run / "roc_band.csv")
    assert (band["tpr_low"] <= band["tpr_high"]).all()
    pr = pd.read_csv(ilvm_run / "pr_curves.csv")  # the same rows as the ROC curves, at both prevalences
    target = json.loads((ilvm_run / "metrics.json").read_text())["posthoc"]["target_prevalence"]
    assert set(pr["curve"]) == set(roc["curve"]) and set(pr["weighting"]) == {"sample", "target"}
    assert pr.loc[pr["weighting"] == "target", "prevalence"].eq(target).all() and pr["precision"].between(0, 1).all()
    pr_band = pd.read_csv(ilvm_run / "pr_band.csv")
    assert (pr_band["precision_low"] <= pr_band["precision_high"]).all() and len(pr_band) == 2 * 101
    calibration = pd.read_csv(ilvm_run / "probability_calibration.csv")
    assert {"lvh_proba_lr", "lvh_proba_prioradj_lr"} <= set(calibration["probability"])
    results = pd.read_csv(ilvm_run / "results.csv")
    assert calibration.groupby("probability")["n"].sum().eq(len(results)).all()
    assert set(pd.read_csv(ilvm_run / "regression_calibration.csv")["prediction"]) >= {"ilvm_pred"}
    assert set(pd.read_csv(ilvm_run / "lr_curve.csv")["is_m"]) == {0, 1}
    assert len(pd.read_csv(ilvm_run / "lr_cutoffs.csv")) == 2
    by_sex = pd.read_csv(ilvm_run / "calibration_curve.csv")
    assert set(by_sex["group"]) <= {"all", "women", "men"} and "all" in set(by_sex["group"])
    assert (by_sex["low"] <= by_sex["observed"]).all() and (by_sex["observed"] <= by_sex["high"]).all()
    bias = json.loads((ilvm_run / "proportional_bias.json").read_text())
    assert bias["status"] == "estimated" and bias["n"] == len(results)
    assert bias["slope_low"] <= bias["slope"] <= bias["slope_high"]


def test_an_evaluation_leaves_no_file_of_an_earlier_one_in_its_folder(synth_cohort, ilvm_run, lvh_ecg_only_run,
                                                                       tmp_path):
    cohort, out = synth_cohort / "cohort.yaml", tmp_path / "eval"
    evaluate_bundle(ilvm_run / "model.aiecg", cohort, synth_cohort / "store", out, split="all", n_resamples=50)
    first = {p.name for p in out.iterdir()}
    assert {"comparison.csv", "decision_curve.csv", "regression_calibration.csv", "lr_curve.csv"} <= first
    evaluate_bundle(lvh_ecg_only_run / "model.aiecg", cohort, synth_cohort / "store", out, split="all",
                    n_resamples=50, compare=False)
    left = {p.name for p in out.iterdir()}
    assert not left & {"comparison.csv", "comparison_scores.csv", "decision_curve.csv", "regression_calibration.csv",
                       "lr_curve.csv", "lr_cutoffs.csv", "proportional_bias.json"}
    assert json.loads((out / "metrics.json").read_text())["bundle"].endswith("lvh/model.aiecg")


def test_the_evaluation_saves_the_reclassification_against_each_criterion(ilvm_run):
    nri = pd.read_csv(ilvm_run / "reclassification.csv").set_index("criterion")
    comparison = pd.read_csv(ilvm_run / "comparison.csv")
    scores = pd.read_csv(ilvm_run / "comparison_scores.csv", dtype={"eid": str})
    results = pd.read_csv(ilvm_run / "results.csv", dtype={"eid": str})
    assert set(nri.index) == set(comparison.loc[comparison["kind"] == "criterion", "name"])
    model = comparison[comparison["kind"] == "model"].iloc[0]
    y = results.set_index("eid")["lvh_true"].reindex(scores["eid"]).to_numpy()
    new = scores[f"score: {model['name']}"].to_numpy() >= model["threshold"]
    for name, row in nri.iterrows():
        margin = scores[f"score: {name}"].to_numpy()
        keep = np.isfinite(margin)
        old, event = margin[keep] >= 0, y[keep] == 1
        assert row["events_up"] == np.sum(event & new[keep] & ~old)
        assert row["non_events_down"] == np.sum(~event & ~new[keep] & old)
        assert row["nri_events"] == pytest.approx((row["events_up"] - row["events_down"]) / row["events"])
    summary = json.loads((ilvm_run / "metrics.json").read_text())["comparison"]["reclassification"]
    assert summary["threshold"] == model["threshold"] and len(summary["rows"]) == len(nri)
