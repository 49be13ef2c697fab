import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from aiecg import __version__
from aiecg.bundle import Bundle, _digest, load_bundle, save_bundle
from aiecg.contract import check_input_contract, input_contract
from aiecg.data.cohort import ClinicalSpec
from aiecg.data.dataset import TargetScaling
from aiecg.data.features import ClinicalEncoder
from aiecg.data.targets import target_spec
from aiecg.errors import BundleError
from aiecg.models import create_model
from aiecg.models.fcn import FCN
from aiecg.models.registry import model_kwargs
from aiecg.predict import predict
from tests.conftest import make_table

LEADS = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]


def _manifest(**filters) -> dict:
    from aiecg.data.prepare import PrepareConfig
    from aiecg.signal.filters import FilterConfig

    config = PrepareConfig(filters=FilterConfig(**filters))
    return {"leads": ["I", "II", "III", "aVR", "aVL", "aVF", *LEADS[2:]], "fs": 500.0, "window": 400,
            "r_offset": 150, "preprocessing": config.to_dict()}


def _bundle() -> tuple[Bundle, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model("fcn", 8, 400, 7, 1).eval()
    encoder = ClinicalEncoder(ClinicalSpec(("sex",), {"smoking": (0, 1, 2)}, ("age", "bmi", "sbp"))).fit(make_table(20))
    bundle = Bundle("fcn", model_kwargs(model), 8, 400, 7, 1, target_spec("INDEXED_MASS"),
                    input_contract(LEADS, _manifest()), model.state_dict(), encoder, TargetScaling((48.0,), (9.5,)),
                    training={"split_seed": 42})
    return bundle, model


def test_bundle_round_trip_reproduces_predictions_exactly(tmp_path):
    bundle, model = _bundle()
    path = save_bundle(bundle, tmp_path / "model.aiecg")
    loaded = load_bundle(path)
    assert loaded.target == bundle.target and loaded.scaling == bundle.scaling
    assert loaded.encoder.to_dict() == bundle.encoder.to_dict() and loaded.training == {"split_seed": 42}
    rng = np.random.default_rng(0)
    ecg, meta = rng.standard_normal((5, 8, 400)).astype(np.float32), rng.random((5, 7)).astype(np.float32)
    before = predict(model, ecg, meta, bundle.target, bundle.scaling)
    after = predict(loaded.build_model(), ecg, meta, loaded.target, loaded.scaling)
    np.testing.assert_array_equal(before, after)


def test_tampered_foreign_and_missing_files_fail_cleanly(tmp_path):
    bundle, _ = _bundle()
    path = save_bundle(bundle, tmp_path / "model.aiecg")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # flip bits in the weights
    (tmp_path / "tampered.aiecg").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_bundle(tmp_path / "tampered.aiecg")
    (tmp_path / "foreign.pth").write_bytes(b"\x80\x04\x95 not a bundle but a pickle")
    with pytest.raises(BundleError, match="not a readable aiecg bundle"):
        load_bundle(tmp_path / "foreign.pth")
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "missing.aiecg")


def test_every_constructor_argument_is_saved_so_a_changed_default_changes_nothing(tmp_path, monkeypatch):
    bundle, model = _bundle()
    path = save_bundle(bundle, tmp_path / "model.aiecg")
    saved = load_bundle(path)
    assert saved.model_kwargs["filters"] == [128, 256, 128] and saved.model_kwargs["conv_dropout"] == 0.4
    assert saved.versions["aiecg"] == __version__ and __version__ not in ("", "0.0.0")
    rng = np.random.default_rng(1)
    ecg, meta = rng.standard_normal((4, 8, 400)).astype(np.float32), rng.random((4, 7)).astype(np.float32)
    before = predict(model, ecg, meta, bundle.target, bundle.scaling)
    # a later aiecg changes FCN's defaults (other widths and kernels): the old bundle must still rebuild its model
    defaults = list(FCN.__init__.__wrapped__.__defaults__)
    monkeypatch.setattr(FCN.__init__.__wrapped__, "__defaults__", ((64, 64, 64), (3, 3, 3), *defaults[2:]))
    assert model_kwargs(create_model("fcn", 8, 400, 7, 1))["filters"] == [64, 64, 64]  # the default did change
    after = predict(load_bundle(path).build_model(), ecg, meta, saved.target, saved.scaling)
    np.testing.assert_array_equal(before, after)


def test_models_check_their_input_shape():
    model = create_model("resnet18", 8, 400, 0, 1).eval()
    with pytest.raises(ValueError, match=r"\[batch, 8 leads, 400 samples\], got \[2, 8, 500\]"):
        model(torch.zeros(2, 8, 500))
    with pytest.raises(ValueError, match="12, 400"):
        model(torch.zeros(2, 12, 400))


def _forge(path, tmp_path, change) -> object:
    """A bundle whose header was edited and whose checksum was recomputed (corruption checks cannot see it)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    document = change(metadata["aiecg"])
    forged = tmp_path / "forged.aiecg"
    save_file(tensors, str(forged), metadata={"aiecg": document, "sha256": _digest(tensors, document)})
    return forged


@pytest.mark.parametrize("change", [
    lambda doc: doc[:-5],  # not JSON
    lambda doc: json.dumps({k: v for k, v in json.loads(doc).items() if k != "target"}),
    lambda doc: json.dumps({**json.loads(doc), "n_leads": "eight"}),
    lambda doc: json.dumps({**json.loads(doc), "target": {"kind": "nonsense"}}),
    lambda doc: json.dumps({**json.loads(doc), "encoder": {"spec": 3}}),
    lambda doc: json.dumps({**json.loads(doc), "input_spec": {"leads": LEADS}}),
    lambda doc: json.dumps([1, 2]),
    lambda doc: json.dumps({**json.loads(doc), "n_samples": 0}),
    lambda doc: json.dumps({**json.loads(doc), "n_meta": -1}),
])
def test_a_forged_header_with_a_recomputed_checksum_is_a_bundle_error(tmp_path, change):
    bundle, _ = _bundle()
    path = save_bundle(bundle, tmp_path / "model.aiecg")
    forged = _forge(path, tmp_path, change)
    with pytest.raises(BundleError, match="malformed bundle header|unsupported bundle format"):
        load_bundle(forged)


def test_a_forged_model_configuration_fails_as_a_bundle_error_when_built(tmp_path):
    bundle, _ = _bundle()
    path = save_bundle(bundle, tmp_path / "model.aiecg")
    forged = _forge(path, tmp_path, lambda doc: json.dumps({**json.loads(doc), "model_kwargs": {"filters": [1]}}))
    with pytest.raises(BundleError, match="cannot build the model|weights do not fit"):
        load_bundle(forged).build_model()


@pytest.mark.parametrize("change", [
    # the fuzz campaign's three multi-line errors (benchmarks/results/fuzz_surfaces.json): torch's load_state_dict
    # message lists missing and unexpected weights over several lines
    lambda doc: {**doc, "model_kwargs": {**doc["model_kwargs"], "batch_norm": None}},
    lambda doc: {**doc, "model_kwargs": {**doc["model_kwargs"], "filters": [64, 64, 64]}},  # other shapes
    lambda doc: {**doc, "model_kwargs": {**doc["model_kwargs"], "conv_dropout": float("nan")}},
    lambda doc: {**doc, "model_kwargs": {**doc["model_kwargs"], "junk": 1}},
    lambda doc: {**doc, "model_name": ""},
    lambda doc: {**doc, "target": {**doc["target"], "kind": "nonsense"}},
    lambda doc: {**doc, "format_version": 99},
    lambda doc: [1, 2],
])
def test_every_error_of_a_damaged_bundle_is_one_line_naming_the_file_and_the_fix(tmp_path, change):
    bundle, _ = _bundle()
    path = save_bundle(bundle, tmp_path / "model.aiecg")
    forged = _forge(path, tmp_path, lambda doc: json.dumps(change(json.loads(doc))))
    with pytest.raises(BundleError) as info:
        load_bundle(forged).build_model()
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(forged)) and len(message) < 600, message
    assert "re-export" in message or "re-copy" in message, message


def test_the_input_contract_names_the_setting_that_differs():
    bundle, _ = _bundle()
    bundle.check_input(_manifest(), "store s", "fix it")  # same settings: fine
    qc = _manifest()
    qc["preprocessing"]["beats"]["quality"]["flat_mv"] = 0.5  # QC thresholds do not change the input values
    qc["preprocessing"]["chunk_size"] = 7
    bundle.check_input(qc, "store s", "fix it")
    with pytest.raises(BundleError, match=r"filters\.notch_hz is 60\.0 there, the model was trained with 50\.0"):
        bundle.check_input(_manifest(notch_hz=60.0), "store s", "fix it")
    other = _manifest()
    other["window"] = 500
    other["preprocessing"]["beats"]["window"] = 500
    with pytest.raises(BundleError, match="window is 500 there.*fix it"):
        bundle.check_input(other, "store s", "fix it")
    with pytest.raises(BundleError, match=r"lacks the leads \['V6'\]"):
        check_input_contract(bundle.input_spec, {**_manifest(), "leads": LEADS[:-1]}, "files", "fix")


def test_the_contract_records_whether_paced_ecgs_were_trained_on_and_old_bundles_still_load(tmp_path):
    from aiecg.contract import paced_caution

    bundle, _ = _bundle()
    assert "include_paced" not in bundle.input_spec  # as a bundle written before the field existed
    old = load_bundle(save_bundle(bundle, tmp_path / "old.aiecg"))
    assert "does not record whether paced ECGs" in paced_caution(old.input_spec, "ventricular")
    bundle.input_spec = input_contract(LEADS, _manifest(), include_paced=False)
    loaded = load_bundle(save_bundle(bundle, tmp_path / "model.aiecg"))
    assert loaded.input_spec["include_paced"] is False
    assert paced_caution(loaded.input_spec, "") == ""  # not paced: nothing to say
    assert paced_caution(loaded.input_spec, "atrial").startswith("paced ECG (atrial pacing): the model never saw")
    assert paced_caution(input_contract(LEADS, _manifest(), include_paced=True), "atrial") == ""
    loaded.check_input(_manifest(), "store s", "fix it")  # a store's manifest has no such key: still matches
