import math

import numpy as np
import pytest
import torch

from aiecg.data.dataset import Arrays, ECGDataset, TargetScaling
from aiecg.data.targets import target_spec
from aiecg.models import create_model
from aiecg.train.loop import FitConfig, fit
from aiecg.train.losses import LogCoshLoss, default_loss


def test_logcosh_matches_its_definition_and_is_stable():
    out = torch.tensor([[0.0], [1.0], [-3.0], [60.0]])
    target = torch.zeros(4, 1)
    expected = np.mean(np.log(np.cosh([0.0, 1.0, -3.0])).tolist() + [60.0 - math.log(2.0)])
    assert float(LogCoshLoss()(out, target)) == pytest.approx(expected, rel=1e-6)


def _toy(n: int, seed: int) -> Arrays:
    """ECGs whose R-wave height carries the target, so a model can learn it in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n).astype(np.float32)
    t = np.arange(100)
    spike = np.exp(-0.5 * ((t - 40) / 3.0) ** 2)
    ecg = (y[:, None, None] / 50.0) * spike[None, None, :] + 0.05 * rng.standard_normal((n, 2, 100))
    return Arrays(np.arange(n).astype(str), np.zeros(n, int), ecg.astype(np.float32),
                  np.zeros((n, 0), np.float32), y[:, None])


def test_fit_learns_seeded_and_writes_epochs(tmp_path):
    train, val = _toy(256, 0), _toy(64, 1)
    scaling = TargetScaling.fit(train.target)
    config = FitConfig(lr=3e-3, batch_size=32, max_epochs=6, early_stopping=20, seed=7)
    results = []
    for run in range(2):
        torch.manual_seed(123)  # model initialisation; fit seeds the rest
        model = create_model("fcn", 2, 100, 0, 1, filters=(8, 8, 8), conv_dropout=0.0, head_dropout=0.0)
        result = fit(model, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(), config,
                     tmp_path / f"run{run}", progress=False)
        results.append((result, [p.detach().clone() for p in model.parameters()]))
    first, second = results
    assert first[0].history[-1]["train_loss"] < 0.5 * first[0].history[0]["train_loss"]
    assert first[0].best_val_loss == min(h["val_loss"] for h in first[0].history)
    assert [h["val_loss"] for h in first[0].history] == [h["val_loss"] for h in second[0].history]
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))
    lines = (tmp_path / "run0" / "epochs.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss,lr,seconds" and len(lines) == 7


def test_early_stopping_and_default_losses():
    train = _toy(64, 0)
    config = FitConfig(lr=0.0, max_epochs=50, early_stopping=3, seed=0)  # lr 0: no improvement after epoch 1
    model = create_model("fcn", 2, 100, 0, 1, filters=(4, 4, 4), batch_norm=False, conv_dropout=0.0, head_dropout=0.0)
    result = fit(model, ECGDataset(train), ECGDataset(train), LogCoshLoss(), config, None, progress=False)
    assert result.epochs_run == 4 and result.best_epoch == 1
    assert isinstance(default_loss(target_spec("INDEXED_MASS")), LogCoshLoss)
    assert isinstance(default_loss(target_spec("LVH"), pos_weight=5.0), torch.nn.BCEWithLogitsLoss)
    loss = default_loss(target_spec("HN"))
    assert float(loss(torch.tensor([[10.0, 0, 0, 0]]), torch.tensor([[0.0]]))) == pytest.approx(0.0, abs=1e-3)


class _Killed(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    from aiecg.config import AugmentConfig

    train, val = _toy(96, 0), _toy(32, 1)
    scaling = TargetScaling.fit(train.target)
    config = FitConfig(lr=3e-3, max_epochs=5, seed=11, augment=AugmentConfig(), lr_patience=1)

    def fresh_model():
        torch.manual_seed(5)
        return create_model("fcn", 2, 100, 0, 1, filters=(8, 8, 8))

    whole = fresh_model()
    fit(whole, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(), config, tmp_path / "a",
        progress=False)

    def kill_after_three(epoch):
        if epoch == 3:
            raise _Killed

    interrupted = fresh_model()
    with pytest.raises(_Killed):
        fit(interrupted, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(), config,
            tmp_path / "b", progress=False, on_epoch_end=kill_after_three)
    resumed = fresh_model()  # a new process would start from fresh weights and load the checkpoint
    result = fit(resumed, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(), config,
                 tmp_path / "b", progress=False, resume=True)
    assert result.resumed_from == 3 and result.epochs_run == 5
    for (key, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key
    assert (tmp_path / "a" / "epochs.csv").read_text().count("\n") == (tmp_path / "b" / "epochs.csv").read_text().count(
        "\n"
    ) == 6


def test_sgd_optimizer_and_the_per_epoch_validation_hook():
    from aiecg.train.loop import make_optimizer

    train, val = _toy(48, 0), _toy(16, 1)
    model = create_model("fcn", 2, 100, 0, 1, filters=(4, 4, 4), conv_dropout=0.0, head_dropout=0.0)
    optimizer = make_optimizer(model, FitConfig(optimizer="sgd", lr=0.01, momentum=0.8))
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.8
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer(model, FitConfig(optimizer="lbfgs"))
    rows = []
    scaling = TargetScaling.fit(train.target)
    result = fit(model, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(),
                 FitConfig(optimizer="sgd", lr=0.01, max_epochs=2, seed=0), None, progress=False,
                 on_validation=rows.append)
    assert rows == result.history and [r["epoch"] for r in rows] == [1, 2]


def test_a_checkpoint_with_a_pickle_payload_is_refused_as_a_bundle_error(tmp_path):
    import os

    import pytest

    from aiecg.errors import BundleError
    from aiecg.train.loop import load_checkpoint

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    torch.save({"model": Payload()}, tmp_path / "checkpoint.pt")
    with pytest.raises(BundleError, match="refused.*never runs pickled code"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not (tmp_path / "ran").exists()
    (tmp_path / "cut.pt").write_bytes((tmp_path / "checkpoint.pt").read_bytes()[:20])
    with pytest.raises(BundleError, match="delete it"):
        load_checkpoint(tmp_path / "cut.pt")
