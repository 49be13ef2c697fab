import numpy as np
import torch

from aiecg.data.dataset import ECGDataset, TargetScaling
from aiecg.models import create_model, list_models
from aiecg.train.finetune import FinetuneConfig, set_trainable_stage, staged_finetune
from aiecg.train.loop import FitConfig
from aiecg.train.losses import LogCoshLoss
from tests.unit.train.test_loop import _toy


def test_each_stage_unfreezes_exactly_the_intended_parameters():
    for name in list_models():
        model = create_model(name, 2, 100, 3, 1)
        groups = model.parameter_groups()
        for stage in range(len(groups)):
            set_trainable_stage(model, stage)
            expected = {id(p) for group in groups[: stage + 1] for p in group}
            assert {id(p) for p in model.parameters() if p.requires_grad} == expected, (name, stage)


def test_staged_finetune_keeps_batchnorm_statistics_and_frozen_blocks(tmp_path):
    train, val = _toy(64, 0), _toy(32, 1)
    scaling = TargetScaling.fit(train.target)
    torch.manual_seed(0)
    model = create_model("fcn", 2, 100, 0, 1, filters=(8, 8, 8))
    stats_before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    first_block = [p.detach().clone() for p in model.blocks[0].parameters()]
    config = FinetuneConfig(stages=2, max_epochs_per_stage=2, early_stopping=5)
    results = staged_finetune(model, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(),
                              FitConfig(seed=0), config, tmp_path, progress=False)
    assert len(results) == 2 and all(r.epochs_run == 2 for r in results)
    for key, value in model.state_dict().items():
        if "running" in key:
            assert torch.equal(value, stats_before[key]), key  # batch-norm statistics untouched
    # stage 1 unfreezes only the last block: the first block is unchanged
    assert all(torch.equal(a, b) for a, b in zip(first_block, model.blocks[0].parameters()))
    assert (tmp_path / "stage0" / "epochs.csv").exists() and (tmp_path / "stage1" / "epochs.csv").exists()
    assert all(p.requires_grad for p in model.parameters())  # left trainable for whoever uses it next
    assert np.isfinite(results[-1].best_val_loss)


def test_a_later_stage_that_never_beats_an_earlier_one_does_not_replace_it(monkeypatch):
    """Stage 1 ends worse than stage 0: stage 2 starts from stage 0's weights and, being worse too, the model ends
    with stage 0's; the whole run's best epoch is found in stage 0."""
    from aiecg.train import finetune
    from aiecg.train.loop import FitResult
    from aiecg.workflows.train import stages_as_one

    train, val = _toy(16, 0), _toy(8, 1)
    scaling = TargetScaling.fit(train.target)
    model = create_model("fcn", 2, 100, 0, 1, filters=(8, 8, 8))
    losses, starts = iter([1.0, 2.0, 1.5]), []

    def fake_fit(model, *args, **kwargs):  # each stage sets its own weights and reports its best loss
        starts.append(float(model.head.hidden.bias[0]))
        loss = next(losses)
        with torch.no_grad():
            for p in model.head.parameters():
                p.fill_(loss)
        return FitResult(best_epoch=2, best_val_loss=loss, epochs_run=3, history=[], seconds=0.0,
                         start_val_loss=3.0)

    monkeypatch.setattr(finetune, "fit", fake_fit)
    results = staged_finetune(model, ECGDataset(train, scaling), ECGDataset(val, scaling), LogCoshLoss(),
                              FitConfig(seed=0), FinetuneConfig(stages=3), None, progress=False)
    assert [r.best_val_loss for r in results] == [1.0, 2.0, 1.5]
    assert starts[2] == 1.0  # stage 2 went on from stage 0's weights, not stage 1's
    assert all(torch.all(p == 1.0) for p in model.head.parameters())  # the kept weights: stage 0's
    assert finetune.best_stage(results) == 0
    whole = stages_as_one(results)
    assert (whole.best_epoch, whole.best_val_loss, whole.epochs_run) == (2, 1.0, 9)
