import numpy as np
import pytest
import torch
from scipy import stats

from aiecg.data.targets import target_spec
from aiecg.train.losses import HuberLoss, LogCoshLoss, TailWeightedL1Loss, make_loss


def test_tail_weighted_loss_weights_rare_high_values():
    loss = TailWeightedL1Loss(floor=0.05)
    target = torch.tensor([[0.0], [1.0], [3.0]])
    output = target + 1.0  # the same absolute error everywhere
    weights = 1 / np.maximum(stats.norm.sf([0.0, 1.0, 3.0]), 0.05)
    assert float(loss(output, target)) == pytest.approx(weights.mean(), rel=1e-5)
    assert weights[2] == pytest.approx(20.0)  # capped by the floor


def test_huber_delta_and_criterion_choice():
    huber = HuberLoss()
    assert float(huber(torch.tensor([3.0]), torch.tensor([0.0]))) == pytest.approx(1.5 * (3.0 - 0.75))
    assert isinstance(make_loss(None, target_spec("MASS")), LogCoshLoss)
    assert isinstance(make_loss("tail", target_spec("INDEXED_MASS")), TailWeightedL1Loss)
    with pytest.raises(ValueError, match="regression loss"):
        make_loss("huber", target_spec("LVH"))
    with pytest.raises(ValueError, match="unknown criterion"):
        make_loss("mse", target_spec("LVH"))
    weighted = make_loss("bce", target_spec("LVH"), pos_weight=4.0)
    assert float(weighted.pos_weight) == 4.0
