"""THE prediction loop: every evaluation, export and report path calls :func:`predict`.

The loop runs a PyTorch model or, for deployment, the same model exported to ONNX (:class:`OnnxModel`, through
ONNX Runtime); both take median beats [n, leads, samples] and clinical features [n, features].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from aiecg.data.dataset import TargetScaling
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.device import resolve_device
from aiecg.errors import AiecgError

ONNX_HINT = "install the optional ONNX dependencies: pip install 'aiecg[onnx]'"


class OnnxModel:
    """An exported model (``aiecg export``) run by ONNX Runtime on the CPU.

    Inputs are named ``ecg`` [batch, leads, samples] and, for models with clinical variables, ``meta``
    [batch, features]; the output ``output`` holds the raw outputs, as the PyTorch model's ``forward``.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise AiecgError(f"--engine onnx needs onnxruntime; {ONNX_HINT}") from None
        options = ort.SessionOptions()
        # the process's share of the CPU budget (aiecg.threads), as torch computes with, and idle threads sleep
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_shapes = {i.name: list(i.shape) for i in self.session.get_inputs()}
        self.n_outputs = int(self.session.get_outputs()[0].shape[-1])

    def __call__(self, ecg: np.ndarray, meta: np.ndarray) -> np.ndarray:
        feeds = {"ecg": ecg}
        if "meta" in self.input_names:
            feeds["meta"] = meta
        return self.session.run(None, feeds)[0]


@torch.no_grad()
def predict_raw(model: nn.Module | OnnxModel, ecg: np.ndarray, meta: np.ndarray, batch_size: int = 256,
                device: str = "cpu") -> np.ndarray:
    """Raw model outputs (standardised values or logits) for arrays [n, leads, samples] and [n, features]."""
    if isinstance(model, nn.Module):
        device = resolve_device(device)
        model.eval().to(device)

        def forward(x: np.ndarray, m: np.ndarray) -> np.ndarray:
            return model(torch.from_numpy(x).to(device), torch.from_numpy(m).to(device)).float().cpu().numpy()
    else:
        forward = model
    outputs = []
    for start in range(0, len(ecg), batch_size):
        x = np.ascontiguousarray(ecg[start : start + batch_size], dtype=np.float32)
        m = np.ascontiguousarray(meta[start : start + batch_size], dtype=np.float32)
        outputs.append(np.asarray(forward(x, m), dtype=np.float32))
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


def predict(model: nn.Module | OnnxModel, ecg: np.ndarray, meta: np.ndarray, spec: TargetSpec,
            scaling: TargetScaling | None = None, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Predictions in target units [n, outputs] (probabilities for classification)."""
    return to_predictions(predict_raw(model, ecg, meta, batch_size, device), spec, scaling)
