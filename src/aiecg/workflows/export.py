"""``aiecg export``: a bundle's model as an ONNX graph, for inference without PyTorch (ONNX Runtime).

The graph takes ``ecg`` [batch, leads, samples] float32 and, for a model trained with clinical variables,
``meta`` [batch, features] float32 (the bundle's encoder output), and returns ``output`` [batch, outputs]: the
raw outputs (standardised values or logits), exactly as the PyTorch model's ``forward``. The batch axis is
dynamic. Pre-processing, encoder, target scaling and post-hoc models stay in the bundle: ``aiecg predict
--engine onnx`` reads them from there and runs only the network through ONNX Runtime.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aiecg.bundle import Bundle, load_bundle
from aiecg.errors import AiecgError
from aiecg.files import temp_path
from aiecg.predict import ONNX_HINT

OPSET = 18


class _Graph(nn.Module):
    """The model's forward with the clinical input only where the model has one (ONNX drops unused inputs)."""

    def __init__(self, model: nn.Module, n_meta: int):
        super().__init__()
        self.model, self.n_meta = model, n_meta

    def forward(self, ecg: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(ecg, meta if self.n_meta else None)


def export_model(model: nn.Module, n_leads: int, n_samples: int, n_meta: int, path: str | Path) -> Path:
    """Write ``model`` (in evaluation mode) as ONNX with a dynamic batch axis; returns the path.

    Raises:
        AiecgError: the ``onnx`` extra (onnx, onnxscript) is not installed.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise AiecgError(f"aiecg export needs onnx and onnxscript; {ONNX_HINT}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _Graph(model.eval(), n_meta).eval()
    ecg = torch.zeros(2, n_leads, n_samples)
    batch = torch.export.Dim("batch")
    args: tuple[Any, ...] = (ecg,)
    names, shapes = ["ecg"], {"ecg": {0: batch}}
    if n_meta:
        args += (torch.zeros(2, n_meta),)
        names.append("meta")
        shapes["meta"] = {0: batch}
    tmp = temp_path(path)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, args, str(tmp), input_names=names, output_names=["output"],
                              dynamic_shapes=shapes, dynamo=True, opset_version=OPSET, external_data=False,
                              verbose=False)
        tmp.replace(path)
    finally:
        quiet.setLevel(level)
        tmp.unlink(missing_ok=True)
    return path


def export_bundle(bundle: Bundle | str | Path, onnx_path: str | Path) -> dict[str, Any]:
    """Export a bundle's network to ``onnx_path``; returns what was written (inputs, shapes, opset)."""
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    path = export_model(bundle.build_model(), bundle.n_leads, bundle.n_samples, bundle.n_meta, onnx_path)
    inputs = {"ecg": ["batch", bundle.n_leads, bundle.n_samples]}
    if bundle.n_meta:
        inputs["meta"] = ["batch", bundle.n_meta]
    return {"onnx": str(path), "model": bundle.model_name, "inputs": inputs,
            "output": ["batch", bundle.n_outputs], "opset": OPSET}
