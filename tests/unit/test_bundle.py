import numpy as np
import pytest
import torch

from aiecg.bundle import Bundle, load_bundle, save_bundle
from aiecg.data.cohort import ClinicalSpec
from aiecg.data.dataset import TargetScaling
from aiecg.data.features import ClinicalEncoder
from aiecg.data.targets import target_spec
from aiecg.errors import BundleError
from aiecg.models import create_model
from aiecg.predict import predict
from tests.conftest import make_table


def _bundle() -> tuple[Bundle, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model("fcn", 8, 400, 7, 1).eval()
    encoder = ClinicalEncoder(ClinicalSpec(("sex",), {"smoking": (0, 1, 2)}, ("age", "bmi", "sbp"))).fit(make_table(20))
    bundle = Bundle("fcn", {}, 8, 400, 7, 1, target_spec("INDEXED_MASS"),
                    {"leads": ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], "fs": 500.0, "window": 400},
                    model.state_dict(), encoder, TargetScaling((48.0,), (9.5,)), training={"split_seed": 42})
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
