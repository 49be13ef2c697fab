"""THE prediction loop: every evaluation, export and report path calls :func:`predict`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aiecg.data.dataset import TargetScaling
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.device import resolve_device


@torch.no_grad()
def predict_raw(model: nn.Module, ecg: np.ndarray, meta: np.ndarray, batch_size: int = 256,
                device: str = "cpu") -> np.ndarray:
    """Raw model outputs (standardised values or logits) for arrays [n, leads, samples] and [n, features]."""
    device = resolve_device(device)
    model.eval().to(device)
    outputs = []
    for start in range(0, len(ecg), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(ecg[start : start + batch_size], dtype=np.float32)).to(device)
        m = torch.from_numpy(np.ascontiguousarray(meta[start : start + batch_size], dtype=np.float32)).to(device)
        outputs.append(model(x, m).float().cpu().numpy())
    if not outputs:
        return np.zeros((0, getattr(model, "n_outputs", 1)), np.float32)
    return np.concatenate(outputs)


def to_predictions(raw: np.ndarray, spec: TargetSpec, scaling: TargetScaling | None) -> np.ndarray:
    """Raw outputs -> target units: de-standardised values, sigmoid probabilities or softmax probabilities."""
    if spec.kind is TaskKind.REGRESSION:
        return scaling.invert(raw) if scaling is not None else raw
    if spec.kind is TaskKind.BINARY:
        return 1.0 / (1.0 + np.exp(-raw))
    shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict(model: nn.Module, ecg: np.ndarray, meta: np.ndarray, spec: TargetSpec,
            scaling: TargetScaling | None = None, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Predictions in target units [n, outputs] (probabilities for classification)."""
    return to_predictions(predict_raw(model, ecg, meta, batch_size, device), spec, scaling)
