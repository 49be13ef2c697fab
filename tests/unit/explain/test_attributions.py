"""Integrated gradients satisfy completeness, respect a lead the model cannot see, and the FCN's class activation
map decomposes its output exactly."""

import numpy as np
import pytest
import torch

from aiecg.explain.attributions import fcn_cam, integrated_gradients, upsample
from aiecg.models import create_model

pytest.importorskip("captum")


def tiny_fcn(n_meta: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    return create_model("fcn", 4, 64, n_meta, 1, filters=(6, 8), kernels=(5, 3)).eval()


def inputs(n: int = 5, n_meta: int = 3, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4, 64)).astype(np.float32), rng.random((n, n_meta)).astype(np.float32)


def test_attributions_sum_to_the_output_change_within_the_reported_delta():
    model = tiny_fcn()
    ecg, meta = inputs()
    meta_baseline = np.full(3, 0.5, np.float32)
    result = integrated_gradients(model, ecg, meta, meta_baseline=meta_baseline, n_steps=64, max_evaluations=128)
    with torch.no_grad():
        out = model(torch.from_numpy(ecg), torch.from_numpy(meta))[:, 0].numpy()
        base = model(torch.zeros(5, 4, 64), torch.from_numpy(np.tile(meta_baseline, (5, 1))))[:, 0].numpy()
    np.testing.assert_allclose(result.outputs, out, atol=1e-6)
    np.testing.assert_allclose(result.baseline_outputs, base, atol=1e-6)
    total = result.ecg.sum(axis=(1, 2)) + result.meta.sum(axis=1)
    change = out - base
    # captum's delta is exactly the completeness gap, and it is small against the change it explains
    np.testing.assert_allclose(total - change, result.delta, atol=1e-5)
    assert np.all(np.abs(total - change) <= np.abs(result.delta) + 1e-5)
    assert np.max(np.abs(result.delta)) < 0.02 * np.max(np.abs(change))
    assert np.abs(result.meta).sum() > 0  # the clinical input gets its share


def test_a_model_that_sees_one_lead_gets_all_ecg_attribution_there():
    model = tiny_fcn(n_meta=0)
    with torch.no_grad():
        first_conv = model.blocks[0][1]
        keep = torch.zeros_like(first_conv.weight)
        keep[:, 2] = 1.0
        first_conv.weight.mul_(keep)  # only lead 2 reaches the features
    ecg, meta = inputs(n_meta=0)
    result = integrated_gradients(model, ecg, meta, n_steps=32)
    per_lead = np.abs(result.ecg).sum(axis=(0, 2))
    assert per_lead[2] > 0
    np.testing.assert_array_equal(per_lead[[0, 1, 3]], 0.0)
    assert result.meta.shape == (5, 0)


def test_fcn_cam_is_an_exact_decomposition_of_the_output():
    model = tiny_fcn()
    ecg, meta = inputs(n=7)
    cam, rest = fcn_cam(model, ecg, meta)
    with torch.no_grad():
        out = model(torch.from_numpy(ecg), torch.from_numpy(meta))[:, 0].numpy()
    assert cam.shape == (7, 16)  # two max-pool blocks: 64 -> 16 time steps
    np.testing.assert_allclose(cam.mean(axis=1) + rest, out, atol=1e-5)
    stretched = upsample(cam, 64)
    assert stretched.shape == (7, 64)
    np.testing.assert_allclose(stretched.mean(axis=1), cam.mean(axis=1), atol=1e-6)
