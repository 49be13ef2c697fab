"""Self-supervised pre-training of an ECG encoder by masked reconstruction of lead-wise time patches.

Each lead of a median beat is cut into time patches; a random share of the (lead, patch) units is hidden and the
network reconstructs the whole beat from the rest, scored on the hidden units only. The masking follows ST-MEM
(Na, Park et al., "Guiding Masked Representation Learning to Capture Spatio-Temporal Relationship of
Electrocardiogram", ICLR 2024): masking per lead and time patch makes the encoder learn both the time course of a
wave and how the leads relate (a hidden patch of V5 is predictable from V4, V6 and the limb leads). With a
convolutional encoder the hidden units are set to zero in place, as SimMIM does for images (Xie et al., CVPR
2022), rather than dropped as in a transformer.

The encoder is an aiecg model's ECG feature blocks (:class:`aiecg.models.heads.ECGModel`), so the pre-trained
weights start a supervised model of the same architecture (``aiecg train --init``). A light decoder (one
convolution whose channels are unfolded back to time) keeps the representation in the encoder.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aiecg.models.heads import ECGModel


class MaskedReconstruction(nn.Module):
    """An encoder's blocks plus a reconstruction decoder, trained through :func:`aiecg.train.loop.fit`.

    ``forward(ecg, meta)`` returns [batch, 3, leads, samples]: the reconstruction, the (augmented) input it should
    reproduce, and the mask (1 where hidden), so that :class:`MaskedReconstructionLoss` needs no target. Training
    masks are drawn from torch's seeded generator (``fit`` seeds it per epoch and rank); in evaluation mode the
    mask is the same fixed draw every time, so validation losses of different epochs are comparable.
    """

    def __init__(self, encoder: ECGModel, patch: int, mask_ratio: float = 0.5, eval_seed: int = 0):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must lie strictly between 0 and 1, got {mask_ratio}")
        if not 1 <= patch <= encoder.n_samples:
            raise ValueError(f"patch must be 1..{encoder.n_samples} samples, got {patch}")
        self.encoder, self.patch, self.mask_ratio, self.eval_seed = encoder, patch, mask_ratio, eval_seed
        self.n_leads, self.n_samples = encoder.n_leads, encoder.n_samples
        with torch.no_grad():
            was_training = encoder.training
            encoder.eval()
            features = self.encode(torch.zeros(1, self.n_leads, self.n_samples))
            encoder.train(was_training)
        channels, length = features.shape[1], features.shape[2]
        self.factor = math.ceil(self.n_samples / length)  # time samples each feature step unfolds into
        self.decoder = nn.Conv1d(channels, self.n_leads * self.factor, kernel_size=3, padding=1)

    def encode(self, ecg: torch.Tensor) -> torch.Tensor:
        """The encoder's feature maps [batch, channels, steps] (its blocks, before pooling)."""
        for block in self.encoder.blocks:
            ecg = block(ecg)
        return ecg

    def mask(self, batch: int, device: torch.device) -> torch.Tensor:
        """A float mask [batch, leads, samples], 1 on hidden (lead, patch) units; at least one unit per row."""
        n_patches = math.ceil(self.n_samples / self.patch)
        generator = None if self.training else torch.Generator().manual_seed(self.eval_seed)
        scores = torch.rand(batch, self.n_leads * n_patches, generator=generator).to(device)
        n_hidden = max(1, round(self.mask_ratio * self.n_leads * n_patches))
        hidden = torch.zeros_like(scores).scatter_(1, scores.argsort(dim=1)[:, :n_hidden], 1.0)
        units = hidden.view(batch, self.n_leads, n_patches)
        return units.repeat_interleave(self.patch, dim=2)[:, :, : self.n_samples]

    def forward(self, ecg: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        self.encoder.check_input(ecg)
        hidden = self.mask(ecg.shape[0], ecg.device)
        features = self.encode(ecg * (1 - hidden))
        unfolded = self.decoder(features)  # [batch, leads * factor, steps]
        batch, _, steps = unfolded.shape
        recon = unfolded.view(batch, self.n_leads, self.factor, steps).transpose(2, 3).reshape(
            batch, self.n_leads, steps * self.factor)[:, :, : self.n_samples]
        return torch.stack([recon, ecg, hidden], dim=1)


class MaskedReconstructionLoss(nn.Module):
    """Mean squared error (mV²) of the reconstruction over the hidden units only; the target is not used."""

    def forward(self, output: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        recon, ecg, hidden = output.unbind(dim=1)
        return ((recon - ecg) ** 2 * hidden).sum() / hidden.sum().clamp_min(1.0)


def hidden_energy(ecg: torch.Tensor, model: MaskedReconstruction) -> float:
    """The loss of reconstructing every hidden unit as zero (the isoelectric line), with the evaluation mask: the
    reference a trained encoder must beat."""
    model.eval()
    hidden = model.mask(ecg.shape[0], ecg.device)
    return float(((ecg**2) * hidden).sum() / hidden.sum().clamp_min(1.0))


def start_from_encoder(model: ECGModel, encoder_state: dict[str, torch.Tensor], freeze: bool = False) -> int:
    """Copy a pre-trained encoder's feature blocks (``blocks.*`` of its state dict) into ``model``; with ``freeze``
    the blocks stay fixed (a linear probe: only the head learns). Returns the number of tensors copied.

    Raises:
        ValueError: the encoder's blocks do not fit the model's (another architecture or size).
    """
    blocks = {key[len("blocks."):]: value for key, value in encoder_state.items() if key.startswith("blocks.")}
    if not blocks:
        raise ValueError("the encoder holds no feature blocks ('blocks.*' weights)")
    try:
        model.blocks.load_state_dict(blocks, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"the encoder's feature blocks do not fit this model ({first})") from None
    if freeze:
        for parameter in model.blocks.parameters():
            parameter.requires_grad_(False)
    return len(blocks)
