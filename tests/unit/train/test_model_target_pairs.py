"""Every registered model trains on every kind of target of the reference, and serves every target.

The targets differ in three kinds only (regression with one or two outputs, binary, multiclass), so each model
is fitted once per kind, on the kind's target with the most outputs; every model-target pair then gets a forward
pass, its loss and its decoded predictions (what differs between targets of one kind: outputs, scaling, loss).
"""

import numpy as np
import pytest
import torch

from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling
from aiecg.data.targets import list_targets, target_spec
from aiecg.models import create_model, list_models
from aiecg.predict import predict
from aiecg.train.loop import FitConfig, fit, validate
from aiecg.train.losses import make_loss

FITTED = {"regression": "INDEXED_MASS_VOL", "binary": "LVH", "multiclass": "HN"}
"""The target fitted for each kind."""


def test_the_fitted_targets_cover_every_kind():
    kinds = {target_spec(t).kind.value for t in list_targets()}
    assert kinds == set(FITTED) and all(target_spec(t).kind.value == kind for kind, t in FITTED.items())
    assert target_spec(FITTED["regression"]).n_outputs == max(
        target_spec(t).n_outputs for t in list_targets() if target_spec(t).is_regression)


def _arrays(spec, n: int, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    if spec.is_regression:
        target = rng.normal(50, 10, (n, spec.n_outputs))
    else:
        classes = 2 if spec.kind.value == "binary" else spec.n_outputs
        target = (np.arange(n) % classes)[:, None].astype(float)
    return Arrays(np.arange(n).astype(str), rng.integers(0, 2, n), rng.normal(0, 0.3, (n, 8, 400)).astype(np.float32),
                  rng.random((n, 5)).astype(np.float32), target.astype(np.float32))


def _model_and_data(arch: str, target: str):
    spec = target_spec(target)
    train, val = _arrays(spec, 16, 0), _arrays(spec, 8, 1)
    scaling = TargetScaling.fit(train.target) if spec.is_regression else None
    torch.manual_seed(0)
    return spec, create_model(arch, 8, 400, 5, spec.n_outputs), train, val, scaling


def _check_predictions(model, val: Arrays, spec, scaling) -> None:
    predictions = predict(model, val.ecg, val.meta, spec, scaling)
    assert predictions.shape == (len(val.ecg), spec.n_outputs) and np.isfinite(predictions).all()
    if spec.is_categorical:
        assert ((predictions >= 0) & (predictions <= 1)).all()
    if spec.kind.value == "multiclass":
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(FITTED))
@pytest.mark.parametrize("arch", list_models())
def test_model_trains_on_each_target_kind(arch, kind):
    spec, model, train, val, scaling = _model_and_data(arch, FITTED[kind])
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(model, ECGDataset(train, scaling), ECGDataset(val, scaling), make_loss(None, spec),
                 FitConfig(max_epochs=1, batch_size=8, seed=0), None, progress=False)
    assert np.isfinite(result.history[0]["train_loss"]) and np.isfinite(result.best_val_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    _check_predictions(model, val, spec, scaling)


@pytest.mark.parametrize("target", list_targets())
@pytest.mark.parametrize("arch", list_models())
def test_model_target_pair_gives_a_loss_and_decoded_predictions(arch, target):
    spec, model, _, val, scaling = _model_and_data(arch, target)
    with torch.no_grad():
        loss = validate(model, ECGDataset(val, scaling), make_loss(None, spec), 8, torch.device("cpu"))
    assert np.isfinite(loss)
    _check_predictions(model, val, spec, scaling)
