"""Every registered model trains a few steps on every target of the reference."""

import numpy as np
import pytest
import torch

from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling
from aiecg.data.targets import list_targets, target_spec
from aiecg.models import create_model, list_models
from aiecg.predict import predict
from aiecg.train.loop import FitConfig, fit
from aiecg.train.losses import make_loss


def _arrays(spec, n: int, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    if spec.is_regression:
        target = rng.normal(50, 10, (n, spec.n_outputs))
    else:
        classes = 2 if spec.kind.value == "binary" else spec.n_outputs
        target = (np.arange(n) % classes)[:, None].astype(float)
    return Arrays(np.arange(n).astype(str), rng.integers(0, 2, n), rng.normal(0, 0.3, (n, 8, 400)).astype(np.float32),
                  rng.random((n, 5)).astype(np.float32), target.astype(np.float32))


@pytest.mark.parametrize("target", list_targets())
@pytest.mark.parametrize("arch", list_models())
def test_model_target_pair_trains(arch, target):
    spec = target_spec(target)
    train, val = _arrays(spec, 16, 0), _arrays(spec, 8, 1)
    scaling = TargetScaling.fit(train.target) if spec.is_regression else None
    torch.manual_seed(0)
    model = create_model(arch, 8, 400, 5, spec.n_outputs)
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(model, ECGDataset(train, scaling), ECGDataset(val, scaling), make_loss(None, spec),
                 FitConfig(max_epochs=1, batch_size=8, seed=0), None, progress=False)
    assert np.isfinite(result.history[0]["train_loss"]) and np.isfinite(result.best_val_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    predictions = predict(model, val.ecg, val.meta, spec, scaling)
    assert predictions.shape == (8, spec.n_outputs) and np.isfinite(predictions).all()
    if spec.is_categorical:
        assert ((predictions >= 0) & (predictions <= 1)).all()
    if spec.kind.value == "multiclass":
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
