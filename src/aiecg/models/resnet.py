"""1-D ResNet18 and ResNet34 for the 12-lead ECG, as used by Soto et al. (2022, "Multimodal deep learning
enhances diagnostic precision in left ventricular hypertrophy", European Heart Journal - Digital Health) after
He et al. (2016): a kernel-7 stride-2 stem with max-pooling, basic blocks of two kernel-3 convolutions with
widths 64-128-256-512, global average pooling and the clinical-fusion head (linear, LeakyReLU, dropout, linear).
Its 32-fold downsampling also suits the 10 s rhythm strip (as in Ribeiro et al., Nat Commun 2020;11:1760), so it is
registered for both inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from aiecg.models.heads import ECGModel
from aiecg.models.registry import register_model


class BasicBlock1d(nn.Module):
    """Two kernel-3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv1d(in_channels, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm1d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet1d(ECGModel):
    """ResNet with basic blocks; ``layers`` gives the blocks per stage ((2, 2, 2, 2) is ResNet18)."""

    def __init__(self, n_leads: int, n_samples: int, n_meta: int, n_outputs: int,
                 layers: tuple[int, ...] = (2, 2, 2, 2), widths: tuple[int, ...] = (64, 128, 256, 512),
                 head_hidden: int = 128, head_dropout: float = 0.5, conv_dropout: float = 0.0):
        super().__init__()
        stem = nn.Sequential(
            nn.Conv1d(n_leads, widths[0], 7, stride=2, padding=3, bias=False), nn.BatchNorm1d(widths[0]),
            nn.ReLU(inplace=True), nn.MaxPool1d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = [stem]
        channels = widths[0]
        for i, (blocks, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock1d(channels, width, stride)] + [BasicBlock1d(width, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.blocks = nn.ModuleList(stages)
        self.dropout = nn.Dropout(conv_dropout)
        self.n_features = channels
        self._init_head(n_meta, n_outputs, head_hidden, head_dropout)


@register_model("resnet18", inputs=("median", "rhythm"))
def resnet18(n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kw) -> ResNet1d:
    """ResNet18 (2-2-2-2 basic blocks), Soto et al. 2022."""
    return ResNet1d(n_leads, n_samples, n_meta, n_outputs, **{"layers": (2, 2, 2, 2), **kw})


@register_model("resnet34", inputs=("median", "rhythm"))
def resnet34(n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kw) -> ResNet1d:
    """ResNet34 (3-4-6-3 basic blocks), Soto et al. 2022."""
    return ResNet1d(n_leads, n_samples, n_meta, n_outputs, **{"layers": (3, 4, 6, 3), **kw})
