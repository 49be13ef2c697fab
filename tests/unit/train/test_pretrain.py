"""Masked reconstruction (aiecg.train.pretrain): the mask, the loss on hidden units only, and starting a model
from an encoder."""

import pytest
import torch

from aiecg.models import create_model
from aiecg.train.pretrain import MaskedReconstruction, MaskedReconstructionLoss, hidden_energy, start_from_encoder


def _network(arch: str = "fcn", patch: int = 25, ratio: float = 0.5) -> MaskedReconstruction:
    torch.manual_seed(0)
    return MaskedReconstruction(create_model(arch, 8, 400, 0, 1), patch, ratio)


@pytest.mark.parametrize("arch", ["fcn", "fcn_zhou2024", "resnet18"])
def test_reconstruction_has_the_input_shape_and_hides_the_asked_share_of_lead_patches(arch):
    network = _network(arch).train()
    ecg = torch.randn(4, 8, 400)
    output = network(ecg)
    assert output.shape == (4, 3, 8, 400)
    recon, target, hidden = output.unbind(1)
    assert torch.equal(target, ecg)
    units = hidden[:, :, ::25]  # one value per (lead, 25-sample patch): 8 x 16 units, half of them hidden
    assert units.sum(dim=(1, 2)).tolist() == [64.0] * 4
    assert torch.equal(hidden, units.repeat_interleave(25, dim=2))  # whole patches, per lead


def test_training_masks_vary_and_the_evaluation_mask_is_fixed():
    network = _network()
    ecg = torch.randn(2, 8, 400)
    network.train()
    first, second = network(ecg)[:, 2], network(ecg)[:, 2]
    assert not torch.equal(first, second)
    network.eval()
    assert torch.equal(network(ecg)[:, 2], network(ecg)[:, 2])


def test_the_loss_scores_hidden_units_only():
    ecg = torch.randn(2, 8, 400)
    hidden = torch.zeros_like(ecg)
    hidden[:, 3, 100:150] = 1
    recon = ecg.clone()
    recon[:, 0] += 5.0  # wrong, but only where nothing was hidden
    loss = MaskedReconstructionLoss()
    assert float(loss(torch.stack([recon, ecg, hidden], 1), None)) == 0.0
    recon[:, 3, 100:150] += 2.0
    assert float(loss(torch.stack([recon, ecg, hidden], 1), None)) == pytest.approx(4.0)


def test_the_zero_reference_is_the_mean_square_of_the_hidden_signal():
    network = _network()
    ecg = torch.full((3, 8, 400), 0.5)
    assert hidden_energy(ecg, network) == pytest.approx(0.25)


def test_a_model_starts_from_the_encoder_blocks_and_a_frozen_encoder_stays_put():
    encoder = create_model("fcn", 8, 400, 0, 1)
    model = create_model("fcn", 8, 400, 16, 1)
    assert start_from_encoder(model, encoder.state_dict(), freeze=True) > 0
    for key, value in encoder.blocks.state_dict().items():
        assert torch.equal(model.blocks.state_dict()[key], value), key
    assert not any(p.requires_grad for p in model.blocks.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    with pytest.raises(ValueError, match="do not fit"):
        start_from_encoder(create_model("fcn_zhou2024", 8, 400, 0, 1), encoder.state_dict())
    with pytest.raises(ValueError, match="mask_ratio"):
        MaskedReconstruction(encoder, 25, 1.0)
