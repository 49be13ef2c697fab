"""Median beat and rhythm strip together (``aiecg train --input both``): two ECG encoders, one per input, whose
pooled features are concatenated before one clinical-fusion head (late fusion, as in the multi-input networks of
Soto et al., Eur Heart J Digit Health 2022, where each modality has its own encoder).

The input is the median beat and the strip joined in time ([leads, median_samples + strip samples],
:func:`aiecg.data.store.join_inputs`), so training, prediction, ONNX export and attributions see one tensor as for
every other model; the model splits it at ``median_samples``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from aiecg.models.heads import ECGModel
from aiecg.models.registry import create_model, register_model


class DualInput(ECGModel):
    """A median-beat encoder (``median_arch``) and a strip encoder (``rhythm_arch``): any registered models, of
    which the feature blocks are kept. ``blocks`` holds the two encoders; staged unfreezing opens them together,
    from their last blocks to their first. ``median_samples`` is where the median beat ends in the joined input
    (training sets it to the store's window; None splits the input in halves)."""

    def __init__(self, n_leads: int, n_samples: int, n_meta: int, n_outputs: int, median_samples: int | None = None,
                 median_arch: str = "fcn", rhythm_arch: str = "inception1d",
                 median_kwargs: dict[str, Any] | None = None, rhythm_kwargs: dict[str, Any] | None = None,
                 conv_dropout: float = 0.2, head_hidden: int = 64, head_dropout: float = 0.5):
        super().__init__()
        median_samples = n_samples // 2 if median_samples is None else median_samples
        if not 0 < median_samples < n_samples:
            raise ValueError(f"median_samples ({median_samples}) must lie inside the input's {n_samples} samples")
        self.median_samples = median_samples
        median = create_model(median_arch, n_leads, median_samples, 0, 1, **(median_kwargs or {}))
        rhythm = create_model(rhythm_arch, n_leads, n_samples - median_samples, 0, 1, **(rhythm_kwargs or {}))
        for encoder in (median, rhythm):
            del encoder.head  # only the feature blocks are used; their heads would be dead weights
            encoder.dropout = nn.Identity()  # one dropout, after the features are joined
        self.blocks = nn.ModuleList([median, rhythm])
        self.dropout = nn.Dropout(conv_dropout)
        self.n_features = median.n_features + rhythm.n_features
        self._init_head(n_meta, n_outputs, head_hidden, head_dropout)

    def forward_features(self, ecg: torch.Tensor) -> torch.Tensor:
        median, rhythm = self.blocks
        split = self.median_samples
        features = [encoder.forward_features(part) for encoder, part in
                    ((median, ecg[:, :, :split]), (rhythm, ecg[:, :, split:]))]
        return self.dropout(torch.cat(features, dim=1))

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The head, then the two encoders' blocks paired from the output down (the shallower one runs out first)."""
        median, rhythm = (list(reversed(encoder.blocks)) for encoder in self.blocks)
        groups = [list(self.head.parameters())]
        for depth in range(max(len(median), len(rhythm))):
            groups.append([p for blocks in (median, rhythm) if depth < len(blocks) for p in blocks[depth].parameters()])
        return groups


@register_model("dual", inputs=("both",))
def dual(n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kw) -> DualInput:
    """FCN on the median beat and InceptionTime on the strip by default (``median_arch``, ``rhythm_arch``)."""
    return DualInput(n_leads, n_samples, n_meta, n_outputs, **kw)
