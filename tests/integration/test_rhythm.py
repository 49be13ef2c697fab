"""10 s rhythm strips end to end: ``prepare --strips`` keeps them in the store; models for ``--input rhythm`` and
``both`` train, predict on files, export to ONNX and explain like median-beat models; a bundle that reads strips
refuses a store without them."""

import json

import numpy as np
import pytest

from aiecg.cli import main as aiecg
from aiecg.csvfile import read_csv
from aiecg.data.store import Store, StoreError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def strip_store(synth_cohort, tmp_path_factory):
    """The session's synthetic cohort prepared again with ``--strips`` (250 Hz) into a store of its own."""
    store = tmp_path_factory.mktemp("strips") / "store"
    assert aiecg(["-q", "prepare", "--cohort", str(synth_cohort / "cohort.yaml"), "--out", str(store), "--strips",
                  "--no-beats", "--workers", "2"]) == 0
    return store


def test_prepare_strips_keeps_memory_mapped_strips_and_records_them_in_the_manifest(synth_cohort, strip_store):
    manifest = json.loads((strip_store / "manifest.json").read_text())
    assert manifest["strips"] == {"file": "strips.npy", "fs": 250.0, "seconds": 10.0, "samples": 2500,
                                  "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"],
                                  "dtype": "float32"}
    store = Store.open(strip_store)
    assert isinstance(store.strips, np.memmap) and store.strips.shape == (len(store.index), 12, 2500)
    ids = sorted(store.usable_ids)[:3]
    strips = store.strips_of(ids, ["V5", "I"])
    assert strips.shape == (3, 2, 2500) and np.abs(strips).max() > 0.3
    # the same medians as the store prepared without strips
    plain = Store.open(synth_cohort / "store")
    assert "strips" not in plain.manifest and not (synth_cohort / "store" / "strips.npy").exists()
    np.testing.assert_array_equal(store.medians(ids, ["I", "V5"]), plain.medians(ids, ["I", "V5"]))
    with pytest.raises(StoreError, match=r"no rhythm strips .*`aiecg prepare --cohort .*--strips --out NEW_STORE`"):
        plain.strips_of(ids, ["I"])


SMALL_INCEPTION = ["--model-kwargs", "filters=8", "--model-kwargs", "depth=3"]


@pytest.fixture(scope="module")
def rhythm_run(synth_cohort, strip_store, tmp_path_factory):
    """``aiecg train --input rhythm`` (a small InceptionTime, 2 epochs) on the strip store; its run folder."""
    runs = tmp_path_factory.mktemp("rhythm_runs")
    assert aiecg(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--store", str(strip_store),
                  "--input", "rhythm", "--arch", "inception1d", *SMALL_INCEPTION, "--epochs", "2", "--out", str(runs),
                  "--name", "rhythm", "--no-compare"]) == 0
    return runs / "rhythm"


def test_a_rhythm_model_records_its_input_in_the_bundle(rhythm_run):
    from aiecg.bundle import load_bundle

    bundle = load_bundle(rhythm_run / "model.aiecg")
    assert bundle.input_kind == "rhythm" and bundle.model_name == "inception1d"
    assert bundle.input_spec["strips"] == {"fs": 250.0, "seconds": 10.0, "samples": 2500}
    assert bundle.n_samples == 2500 and bundle.n_leads == 8
    assert json.loads((rhythm_run / "metrics.json").read_text())["test"]["n"] > 0


def test_a_bundle_that_reads_strips_refuses_a_store_without_them(synth_cohort, rhythm_run, tmp_path, capsys):
    code = aiecg(["-q", "evaluate", "--bundle", str(rhythm_run / "model.aiecg"), "--cohort",
                  str(synth_cohort / "cohort.yaml"), "--out", str(tmp_path / "eval")])
    err = capsys.readouterr().err
    assert code != 0 and not (tmp_path / "eval").exists()
    assert f"store {synth_cohort / 'store'} holds no rhythm strips, and the model reads them (input 'rhythm')" in err
    assert "aiecg prepare --cohort" in err and "--strips 250 --strip-seconds 10" in err


def test_training_refuses_a_model_or_a_store_that_does_not_fit_the_input(synth_cohort, strip_store, tmp_path,
                                                                          capsys):
    base = ["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--out", str(tmp_path), "--epochs", "1"]
    assert aiecg([*base, "--store", str(strip_store), "--input", "rhythm", "--arch", "fcn"]) != 0
    assert "model 'fcn' reads median input, not 'rhythm'; for --input rhythm pick --arch inception1d" in \
        capsys.readouterr().err
    assert aiecg([*base, "--input", "rhythm", "--arch", "resnet18"]) != 0  # the cohort's own store has no strips
    assert "holds no rhythm strips (it was prepared without --strips)" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def both_run(synth_cohort, strip_store, tmp_path_factory):
    """``aiecg train --input both`` (the FCN and a small InceptionTime, 1 epoch) on the strip store; its run folder."""
    runs = tmp_path_factory.mktemp("both_runs")
    assert aiecg(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--store", str(strip_store),
                  "--input", "both", "--arch", "dual", "--model-kwargs", "rhythm_kwargs={filters: 4, depth: 3}",
                  "--epochs", "1", "--out", str(runs), "--name", "both", "--no-compare"]) == 0
    return runs / "both"


def test_both_inputs_train_one_fused_model(both_run):
    from aiecg.bundle import load_bundle

    bundle = load_bundle(both_run / "model.aiecg")
    assert bundle.input_kind == "both" and bundle.n_samples == 400 + 2500
    assert bundle.model_kwargs["median_samples"] == 400


def test_init_from_a_model_of_another_input_names_both_inputs(synth_cohort, strip_store, rhythm_run, tmp_path,
                                                              capsys):
    assert aiecg(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--store", str(strip_store),
                  "--init", str(rhythm_run / "model.aiecg"), "--epochs", "1", "--out", str(tmp_path),
                  "--name", "median"]) != 0
    err = capsys.readouterr().err
    assert f"--init {rhythm_run / 'model.aiecg'} reads rhythm input, this run --input median" in err
    assert not (tmp_path / "median" / "model.aiecg").exists()


def test_both_refuses_a_split_other_than_the_stores_window(synth_cohort, strip_store, tmp_path, capsys):
    assert aiecg(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--store", str(strip_store),
                  "--input", "both", "--arch", "dual", "--model-kwargs", "median_samples=200", "--epochs", "1",
                  "--out", str(tmp_path), "--name", "both"]) != 0
    assert "median_samples=200: the joined input's median beat is the store's window of 400 samples" in \
        capsys.readouterr().err
    assert not (tmp_path / "both" / "model.aiecg").exists()


def test_predict_on_files_builds_strips_like_prepare_and_onnx_gives_the_same_predictions(synth_cohort, rhythm_run,
                                                                                           tmp_path):
    import pandas as pd

    from aiecg.workflows.predict import predict_files

    results = pd.read_csv(rhythm_run / "results.csv")
    ecg = synth_cohort / "ecg"
    files = [str(ecg / f"{eid}_20205_2_0.xml") for eid in results["eid"]]
    kwargs = {"clinical": synth_cohort / "cohort.csv", "id_column": "eid"}
    bundle = rhythm_run / "model.aiecg"
    table = predict_files(bundle, files, **kwargs)
    assert (table["status"] == "ok").all()
    # the strip built from each file is the one prepare stored: the same prediction as the run's evaluation
    np.testing.assert_allclose(table["ilvm_pred"], results["ilvm_pred"], rtol=1e-5, atol=1e-5)
    onnx = tmp_path / "rhythm.onnx"
    assert aiecg(["-q", "export", "--bundle", str(bundle), "--onnx", str(onnx)]) == 0
    onnx_rows = predict_files(bundle, files, engine="onnx", onnx_path=onnx, **kwargs)
    np.testing.assert_allclose(onnx_rows["ilvm_pred"], table["ilvm_pred"], atol=1e-4)


def _explained(run, synth_cohort, strip_store, tmp_path):
    """``aiecg explain`` of ``run``'s bundle on 4 participants of the strip store (3 in the sanity check): the
    output folder and its explain.json."""
    out = tmp_path / "explain"
    assert aiecg(["-q", "explain", "--bundle", str(run / "model.aiecg"), "--cohort", str(synth_cohort / "cohort.yaml"),
                  "--store", str(strip_store), "--out", str(out), "--max-participants", "4", "--steps", "4",
                  "--sanity-participants", "3"]) == 0
    return out, json.loads((out / "explain.json").read_text())


def test_explain_a_rhythm_model_over_the_strip_with_a_per_lead_summary(synth_cohort, strip_store, rhythm_run,
                                                                       tmp_path):
    out, summary = _explained(rhythm_run, synth_cohort, strip_store, tmp_path)
    assert summary["input"] == "rhythm" and summary["waves"] is None and not (out / "waves.csv").exists()
    assert summary["baselines"]["ecg"]["kind"] == "mean rhythm strip per sex"
    check = summary["randomisation_check"]  # a strip has no waves: each lead's net contribution is checked instead
    assert check["drawn"] == ["integrated gradients (signed)", "lead contributions (signed, per lead)"]
    assert "wave contributions (signed, per lead and wave)" not in check["maps"]
    data = np.load(out / "attributions.npz")
    assert data["ecg_attr"].shape == (4, 8, 2500) and np.abs(data["ecg_attr"]).sum() > 0
    np.testing.assert_allclose(data["time_ms"][[0, 1, -1]], [0.0, 4.0, 9996.0])  # ms from the strip start
    figures = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert any(name.startswith("explain_leads_") for name in figures)
    assert any(name.startswith("explain_strip_") for name in figures)
    assert not any(name.startswith(("explain_beats_", "explain_waves_")) for name in figures)


def test_explain_a_model_of_both_inputs_cuts_waves_in_the_beat_and_sums_leads_over_the_strip(synth_cohort,
                                                                                             strip_store, both_run,
                                                                                             tmp_path):
    from aiecg.explain.sanity import LEADS, SIGNED, WAVES
    from aiecg.explain.waves import FIDUCIALS, wave_summary

    out, summary = _explained(both_run, synth_cohort, strip_store, tmp_path)
    assert summary["input"] == "both"
    assert summary["baselines"]["ecg"]["kind"] == "mean median beat and rhythm strip per sex"
    assert summary["randomisation_check"]["drawn"] == [SIGNED, WAVES, LEADS]
    data = np.load(out / "attributions.npz")
    assert int(data["median_samples"]) == 400 and data["ecg_attr"].shape == (4, 8, 400 + 2500)
    assert len(data["time_ms"]) == 400 and data["time_ms"][0] < 0 < data["time_ms"][-1]  # the beat: ms from R
    np.testing.assert_allclose(data["strip_time_ms"][[0, 1, -1]], [0.0, 4.0, 9996.0])  # the strip: from its start
    # each input's share of the |net contribution|, from the attributions as saved
    attr = data["ecg_attr"].astype(np.float64)
    net = np.abs(np.stack([attr[:, :, :400].sum(axis=(1, 2)), attr[:, :, 400:].sum(axis=(1, 2))], axis=1))
    shares = summary["inputs"]["net_contribution_share"]
    expected = (net / net.sum(axis=1, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose([shares["median beat"][0], shares["rhythm strip"][0]], expected, rtol=1e-6)
    assert all(low <= est <= high for est, low, high in shares.values())
    waves = read_csv(out / "waves.csv")  # cut at the beat's fiducials: the waves of the beat part alone
    fiducials = Store.open(strip_store).index.set_index("id").loc[data["ids"].astype(str), list(FIDUCIALS)]
    beat_only = wave_summary(data["ecg_attr"][:, :, :400], fiducials.to_numpy(float), list(data["leads"]))
    np.testing.assert_allclose(waves["net_share"], beat_only["net_share"], rtol=1e-6)
    figures = sorted(p.stem for p in (out / "figures").glob("*.png"))
    for kind in ("explain_time_", "explain_waves_", "explain_beats_high_", "explain_leads_", "explain_strip_"):
        assert any(name.startswith(kind) for name in figures), (kind, figures)


def test_pretraining_on_strips_starts_a_rhythm_model(synth_cohort, strip_store, tmp_path):
    """aiecg pretrain --input rhythm: masked reconstruction of 50 ms patches of the 250 Hz strips by a small
    InceptionTime; its encoder starts aiecg train --input rhythm --init, whose bundle records it."""
    from aiecg.bundle import load_bundle

    assert aiecg(["-q", "pretrain", "--stores", str(strip_store), "--out", str(tmp_path / "pre"), "--input", "rhythm",
                  "--arch", "inception1d", *SMALL_INCEPTION, "--epochs", "6", "--lr", "0.003",
                  "--batch-size", "16"]) == 0
    summary = json.loads((tmp_path / "pre" / "pretrain.json").read_text())
    assert summary["best_val_loss"] < summary["zero_reconstruction_val_loss"]
    encoder = load_bundle(tmp_path / "pre" / "encoder.aiecg", allow_encoder=True)
    assert encoder.input_kind == "rhythm" and encoder.n_samples == 2500
    assert encoder.training["input"] == "rhythm" and encoder.training["patch_samples"] == 12  # 50 ms at 250 Hz
    assert aiecg(["-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--store", str(strip_store),
                  "--input", "rhythm", "--arch", "inception1d", *SMALL_INCEPTION, "--init",
                  str(tmp_path / "pre" / "encoder.aiecg"), "--epochs", "1", "--out", str(tmp_path), "--name", "tuned",
                  "--no-compare"]) == 0
    bundle = load_bundle(tmp_path / "tuned" / "model.aiecg")
    assert bundle.input_kind == "rhythm"
    assert bundle.training["init"] == str(tmp_path / "pre" / "encoder.aiecg")
