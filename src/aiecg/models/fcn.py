"""Fully convolutional network for time series (Wang, Yan & Oates, IJCNN 2017), as used for LV mass by
Naderi, Kaplan et al.: three convolution blocks (128/256/128 filters, kernels 8/5/3), each with batch norm,
LeakyReLU and max-pooling, global average pooling, dropout, and a clinical-fusion head.
"""

from __future__ import annotations

from torch import nn

from aiecg.models.heads import ECGModel
from aiecg.models.registry import register_model


class FCN(ECGModel):
    """Wang et al. (2017) FCN with switches for batch norm, max-pool and dropout."""

    def __init__(
        self,
        n_leads: int,
        n_samples: int,
        n_meta: int,
        n_outputs: int,
        filters: tuple[int, ...] = (128, 256, 128),
        kernels: tuple[int, ...] = (8, 5, 3),
        batch_norm: bool = True,
        max_pool: bool = True,
        conv_dropout: float = 0.4,
        head_dropout: float = 0.6,
        head_hidden: int = 64,
    ):
        super().__init__()
        if len(filters) != len(kernels):
            raise ValueError("filters and kernels must have the same length")
        blocks, channels = [], n_leads
        for width, kernel in zip(filters, kernels):
            layers: list[nn.Module] = [
                nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0),  # "same" length for even kernels too
                nn.Conv1d(channels, width, kernel, bias=not batch_norm),
            ]
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.LeakyReLU())
            if max_pool:
                layers.append(nn.MaxPool1d(2))
            blocks.append(nn.Sequential(*layers))
            channels = width
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(conv_dropout)
        self.n_features = channels
        self._init_head(n_meta, n_outputs, head_hidden, head_dropout)


@register_model("fcn")
def fcn_wang2016(n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kw) -> FCN:
    """FCN in the Wang et al. (2017) configuration WANG2016: 128/256/128, kernels 8/5/3, batch norm, max-pool."""
    return FCN(n_leads, n_samples, n_meta, n_outputs, **kw)


@register_model("fcn_zhou2024")
def fcn_zhou2024(n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kw) -> FCN:
    """The lighter ZHOU2024 configuration of the reference code: 32/32/32 filters, kernel 3, max-pool,
    no batch norm."""
    settings = {"filters": (32, 32, 32), "kernels": (3, 3, 3), "batch_norm": False, "max_pool": True, **kw}
    return FCN(n_leads, n_samples, n_meta, n_outputs, **settings)
