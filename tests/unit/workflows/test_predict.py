"""The parts of ``aiecg predict`` that need no model: the input contract and the output columns."""

import numpy as np
import pytest

from aiecg.contract import check_recording
from aiecg.data.prepare import PrepareConfig
from aiecg.data.targets import target_spec
from aiecg.ecg import STANDARD_LEADS
from aiecg.errors import AiecgError, BundleError
from aiecg.evaluate.calibration import SexLogisticModel
from aiecg.evaluate.conformal import fit_conformal
from aiecg.evaluate.posthoc import PostHoc
from aiecg.workflows.predict import prediction_columns

SPEC = {"leads": ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], "fs": 500.0, "window": 400, "r_offset": 150,
        "preprocessing": PrepareConfig().to_dict()}


def test_a_standard_recording_is_served():
    check_recording(SPEC, {"fs": 500, "leads": STANDARD_LEADS, "duration_s": 10.0}, "a.xml")
    # 8 independent leads: the limb leads are derived; 250 Hz still holds the 100 Hz band
    check_recording(SPEC, {"fs": 250, "leads": ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], "duration_s": 4.5},
                    "b.xml")


@pytest.mark.parametrize("data, message", [
    ({"fs": 100, "leads": STANDARD_LEADS, "duration_s": 10.0}, "recorded at 100 Hz"),
    ({"fs": 199, "leads": STANDARD_LEADS, "duration_s": 10.0}, "needs >= 200 Hz"),
    ({"fs": 500, "leads": ["II", "V1", "V2", "V3", "V4", "V5", "V6"], "duration_s": 10.0}, "lead(s) I, III, aVR"),
    ({"fs": 500, "leads": STANDARD_LEADS[:11], "duration_s": 10.0}, "lead(s) V6 missing"),
    ({"fs": 500, "leads": STANDARD_LEADS, "duration_s": 4.4}, "4.40 s long"),
])
def test_what_the_bundle_cannot_serve_is_named(data, message):
    with pytest.raises(BundleError, match="^c.xml: ") as info:
        check_recording(SPEC, data, "c.xml")
    assert message in str(info.value)


def test_the_band_follows_the_bundle_preprocessing():
    spec = {**SPEC, "preprocessing": {**SPEC["preprocessing"],
                                      "filters": {**SPEC["preprocessing"]["filters"], "lowpass_hz": 40.0}}}
    check_recording(spec, {"fs": 100, "leads": STANDARD_LEADS, "duration_s": 10.0}, "d.xml")


def test_sex_specific_columns_stay_empty_where_sex_is_unknown():
    spec = target_spec("INDEXED_MASS")
    lr = SexLogisticModel(intercept=-10.0, coef_sex=1.0, coef_value=0.15)
    posthoc = PostHoc(lr, None, 0.2, 0.1, threshold=0.5)
    conformal = fit_conformal(np.arange(1, 20, dtype=float)[:, None], np.zeros((19, 1)), ["INDEXED_MASS"])
    y_pred = np.array([[60.0], [60.0], [60.0], [80.0]])
    table, sex_specific = prediction_columns(spec, posthoc, conformal, y_pred, np.array([1, 0, np.nan, np.nan]),
                                             level=0.9)
    # 60 g/m2: LVH in a woman (> 55), not in a man (> 70); unknown sex -> no call
    assert table["lvh_pred_cutoff"].tolist()[:2] == [0.0, 1.0] and np.isnan(table.loc[2, "lvh_pred_cutoff"])
    # one rule, whatever the value: above both cut-offs the call would agree, but a sex-specific output of a row
    # without a sex stays empty (issue 25: one file got lvh_call 0 with lvh_proba_lr empty)
    assert set(sex_specific) == {"lvh_pred_cutoff", "lvh_proba_lr", "lvh_proba_prioradj_lr", "lvh_call"}
    assert table.loc[2:, sex_specific].isna().all().all()
    assert table.loc[0, "lvh_proba_lr"] > table.loc[1, "lvh_proba_lr"]
    assert table["ilvm_pred"].tolist() == [60.0, 60.0, 60.0, 80.0]
    assert table["ilvm_pred_upper"].tolist() == [78.0, 78.0, 78.0, 98.0]  # half-width: 18th of 19 residuals
    assert table["lvh_call"].tolist()[:2] == [float(p >= 0.5) for p in table["lvh_proba_lr"][:2]]
    assert (table["call_threshold"] == 0.5).all() and "call_prevalence" not in table  # the saved operating point


def test_a_stated_prevalence_shifts_the_probability_and_leaves_the_call_at_its_operating_point():
    spec = target_spec("LVH")
    posthoc = PostHoc(None, model_prevalence=0.5, validation_prevalence=0.3, target_prevalence=0.3, threshold=0.4)
    y_pred = np.linspace(0.05, 0.95, 19)[:, None]
    sexes = np.full(19, np.nan)  # an ECG-only LVH model's call needs no sex
    trained, sex_specific = prediction_columns(spec, posthoc, None, y_pred, sexes)
    assert sex_specific == [] and trained["lvh_call"].tolist() == [float(p >= 0.4) for p in y_pred[:, 0]]
    rare, _ = prediction_columns(spec, posthoc, None, y_pred, sexes, target_prevalence=0.02)
    odds = y_pred[:, 0] / (1 - y_pred[:, 0]) * (0.02 / 0.98) / (0.5 / 0.5)  # Saerens et al. 2002
    np.testing.assert_allclose(rare["lvh_proba_prioradj"], odds / (1 + odds))
    # the call is the saved cut-off on the evaluated probability: its sensitivity and specificity do not move with
    # the prevalence, so the stated one leaves it alone (the shifted probability would call far fewer)
    assert rare["lvh_call"].tolist() == trained["lvh_call"].tolist()
    assert rare["lvh_call"].sum() > (rare["lvh_proba_prioradj"] >= 0.4).sum()
    assert (rare["call_threshold"] == 0.4).all() and "call_prevalence" not in rare
    with pytest.raises(AiecgError, match="must lie in"):
        prediction_columns(spec, posthoc, None, y_pred, sexes, target_prevalence=2.0)
    unshiftable = PostHoc(None, model_prevalence=None, validation_prevalence=None, target_prevalence=None,
                          threshold=0.4)
    with pytest.raises(BundleError, match="cannot be shifted"):
        prediction_columns(spec, unshiftable, None, y_pred, sexes, target_prevalence=0.02)


def test_an_export_folder_left_by_a_killed_predict_is_swept_and_a_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from aiecg.workflows.predict import ONNX_SCRATCH, sweep_onnx_scratch

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{ONNX_SCRATCH}{int(gone.stdout)}-abc"
    live = tmp_path / f"{ONNX_SCRATCH}{os.getppid()}-def"
    other = tmp_path / f"{ONNX_SCRATCH}notapid"
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x")
    assert sweep_onnx_scratch(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and other.exists()


def test_an_older_bundle_without_the_training_prevalence_does_not_pass_off_another_as_it():
    from aiecg.workflows.predict import bundle_summary, describe_bundle
    from tests.unit.test_bundle import _bundle

    bundle, _ = _bundle()
    lr = SexLogisticModel(intercept=-10.0, coef_sex=1.0, coef_value=0.15)
    # trained with --target-prevalence 0.02: the post-hoc target prevalence is the stated one, not the split's
    bundle.thresholds = {"posthoc": PostHoc(lr, None, 0.3, 0.02, threshold=0.5).to_dict()}
    old = bundle_summary(bundle)
    assert old["lvh_prevalence_train"] is None and "older aiecg" in old["lvh_prevalence_train_unknown"]
    text = describe_bundle(old)
    assert "LVH prevalence of its training split unknown" in text and "2.0% in its training split" not in text
    assert "*_prioradj probabilities reflect an LVH prevalence of 2.0%" in text  # labelled for what it is
    bundle.training["lvh_prevalence"] = 0.3
    recorded = bundle_summary(bundle)
    assert recorded["lvh_prevalence_train"] == 0.3 and "lvh_prevalence_train_unknown" not in recorded
    assert "LVH prevalence 30.0% in its training split" in describe_bundle(recorded)


def test_a_fine_tuned_bundle_says_what_it_was_fine_tuned_on():
    from aiecg.workflows.predict import bundle_summary, describe_bundle
    from tests.unit.test_bundle import _bundle

    bundle, _ = _bundle()
    bundle.training.update({"lvh_prevalence": 0.3, "finetune_cohort": "ext/cohort.yaml", "finetune_n_train": 40,
                            "finetune_lvh_prevalence": 0.125})
    summary = bundle_summary(bundle)
    assert (summary["finetune_n_train"], summary["finetune_lvh_prevalence"]) == (40, 0.125)
    text = describe_bundle(summary)
    assert "LVH prevalence 30.0% in its training split" in text  # the source cohort's, labelled as such
    assert "fine-tuned on 'ext' (40 training participants, LVH prevalence 12.5%)" in text
