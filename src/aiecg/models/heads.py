"""The shared model interface and the clinical-fusion head."""

from __future__ import annotations

import torch
from torch import nn


class FusionHead(nn.Module):
    """ECG features concatenated with clinical features, then a two-layer MLP.

    As in the reference models: linear -> LeakyReLU -> dropout -> linear. With ``n_meta == 0`` the head sees the
    ECG features only (the ``--excl_meta`` models).
    """

    def __init__(self, n_features: int, n_meta: int, n_outputs: int, hidden: int = 64, dropout: float = 0.6):
        super().__init__()
        self.n_meta = n_meta
        self.hidden = nn.Linear(n_features + n_meta, hidden)
        self.activation = nn.LeakyReLU()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, features: torch.Tensor, meta: torch.Tensor | None) -> torch.Tensor:
        if self.n_meta:
            if meta is None or meta.shape[1] != self.n_meta:
                got = None if meta is None else tuple(meta.shape)
                raise ValueError(f"model expects {self.n_meta} clinical features, got {got}")
            features = torch.cat([features, meta], dim=1)
        return self.out(self.dropout(self.activation(self.hidden(features))))


class ECGModel(nn.Module):
    """Base of every aiecg model (after braindecode's ``EEGModuleMixin``): one interface for training,
    fine-tuning and prediction.

    Subclasses set ``self.blocks`` (an ``nn.ModuleList`` from input to output), ``self.dropout`` (after pooling),
    ``self.n_features`` and call :meth:`_init_head`.
    """

    blocks: nn.ModuleList
    dropout: nn.Module
    n_features: int

    def _init_head(self, n_meta: int, n_outputs: int, hidden: int, dropout: float) -> None:
        self.n_meta, self.n_outputs, self._hidden, self._head_dropout = n_meta, n_outputs, hidden, dropout
        self.head = FusionHead(self.n_features, n_meta, n_outputs, hidden, dropout)

    def forward_features(self, ecg: torch.Tensor) -> torch.Tensor:
        """Pooled ECG features [batch, n_features]: the blocks in order, global average pooling over time, then
        ``self.dropout``."""
        for block in self.blocks:
            ecg = block(ecg)
        return self.dropout(ecg.mean(dim=2))

    def forward(self, ecg: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.forward_features(ecg), meta)

    def reset_head(self, n_outputs: int) -> None:
        """A fresh head with ``n_outputs`` outputs (for a new target), keeping the ECG feature extractor."""
        self._init_head(self.n_meta, n_outputs, self._hidden, self._head_dropout)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """Parameters grouped for staged unfreezing, from the head to the input block."""
        return [list(self.head.parameters())] + [list(block.parameters()) for block in reversed(self.blocks)]
