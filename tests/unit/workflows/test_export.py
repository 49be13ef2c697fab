"""ONNX export: ONNX Runtime reproduces PyTorch for every registered model, with a dynamic batch axis."""

import numpy as np
import pytest
import torch

from aiecg.models import create_model, list_models
from aiecg.predict import OnnxModel, predict_raw

pytest.importorskip("onnxruntime", reason="the 'onnx' extra is part of 'dev'")
from aiecg.workflows.export import export_model  # noqa: E402


@pytest.mark.parametrize("name", list_models())
def test_onnx_runtime_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, 8, 400, 5, 2).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the test sees them exported
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = export_model(model, 8, 400, 5, tmp_path / f"{name}.onnx")
    onnx = OnnxModel(path)
    rng = np.random.default_rng(1)
    for batch in (1, 7):  # the batch axis is dynamic
        ecg = rng.normal(0, 0.5, (batch, 8, 400)).astype(np.float32)
        meta = rng.uniform(0, 1, (batch, 5)).astype(np.float32)
        expected = predict_raw(model, ecg, meta)
        got = predict_raw(onnx, ecg, meta, batch_size=4)
        assert got.shape == (batch, 2)
        assert np.max(np.abs(got - expected)) < 1e-4


def test_ecg_only_model_has_no_clinical_input(tmp_path):
    torch.manual_seed(0)
    model = create_model("fcn", 8, 400, 0, 1).eval()
    onnx = OnnxModel(export_model(model, 8, 400, 0, tmp_path / "ecg_only.onnx"))
    assert onnx.input_names == ["ecg"]
    ecg = np.random.default_rng(2).normal(0, 0.5, (3, 8, 400)).astype(np.float32)
    empty = np.zeros((3, 0), np.float32)
    np.testing.assert_allclose(predict_raw(onnx, ecg, empty), predict_raw(model, ecg, empty), atol=1e-4)
