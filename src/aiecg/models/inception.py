"""InceptionTime for the 10 s, 12-lead rhythm strip (Ismail Fawaz et al., "InceptionTime: Finding AlexNet for time
series classification", Data Mining and Knowledge Discovery 2020;34:1936-1962): inception modules (a 1x1
bottleneck, three parallel convolutions of long, medium and short kernels, and a max-pool branch), a residual
shortcut around every three modules, global average pooling and the clinical-fusion head.

The kernels (39, 19, 9 samples: 156, 76 and 36 ms at 250 Hz) span a QRS complex, a T wave and a QRS onset; the
network keeps the strip's full length to the pooling, so every beat of the strip contributes to the features.
"""

from __future__ import annotations

import torch
from torch import nn

from aiecg.models.heads import ECGModel
from aiecg.models.registry import register_model


class InceptionModule(nn.Module):
    """Bottleneck -> three "same"-length convolutions, plus max-pool -> 1x1; concatenated, batch norm, ReLU."""

    def __init__(self, in_channels: int, filters: int, kernels: tuple[int, ...], bottleneck: int):
        super().__init__()
        self.bottleneck: nn.Module = (nn.Conv1d(in_channels, bottleneck, 1, bias=False) if in_channels > 1
                                      else nn.Identity())
        width = bottleneck if in_channels > 1 else in_channels
        self.convs = nn.ModuleList(nn.Conv1d(width, filters, k, padding=k // 2, bias=False) for k in kernels)
        self.pool = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(in_channels, filters, 1, bias=False))
        self.bn = nn.BatchNorm1d(filters * (len(kernels) + 1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        out = torch.cat([conv(z) for conv in self.convs] + [self.pool(x)], dim=1)
        return self.relu(self.bn(out))


class InceptionBlock(nn.Module):
    """``modules`` inception modules with a residual shortcut (1x1 convolution and batch norm) around them."""

    def __init__(self, in_channels: int, filters: int, kernels: tuple[int, ...], bottleneck: int, modules: int):
        super().__init__()
        width = filters * (len(kernels) + 1)
        layers, channels = [], in_channels
        for _ in range(modules):
            layers.append(InceptionModule(channels, filters, kernels, bottleneck))
            channels = width
        self.layers = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv1d(in_channels, width, 1, bias=False), nn.BatchNorm1d(width))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.layers(x) + self.shortcut(x))


class InceptionTime(ECGModel):
    """InceptionTime with ``depth`` modules (a residual block every ``residual_every``)."""

    def __init__(self, n_leads: int, n_samples: int, n_meta: int, n_outputs: int, filters: int = 32,
                 kernels: tuple[int, ...] = (39, 19, 9), bottleneck: int = 32, depth: int = 6,
                 residual_every: int = 3, conv_dropout: float = 0.0, head_hidden: int = 64,
                 head_dropout: float = 0.5):
        super().__init__()
        if depth < 1 or residual_every < 1 or depth % residual_every:
            raise ValueError(f"depth ({depth}) must be a positive multiple of residual_every ({residual_every})")
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"kernels {kernels} must be odd (same-length convolutions)")
        blocks, channels = [], n_leads
        for _ in range(depth // residual_every):
            blocks.append(InceptionBlock(channels, filters, tuple(kernels), bottleneck, residual_every))
            channels = filters * (len(kernels) + 1)
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(conv_dropout)
        self.n_features = channels
        self._init_head(n_meta, n_outputs, head_hidden, head_dropout)


@register_model("inception1d", inputs=("rhythm",))
def inception1d(n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kw) -> InceptionTime:
    """InceptionTime (Ismail Fawaz et al. 2020): 32 filters, kernels 39/19/9, bottleneck 32, depth 6."""
    return InceptionTime(n_leads, n_samples, n_meta, n_outputs, **kw)
