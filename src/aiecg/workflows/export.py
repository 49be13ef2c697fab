"""``aiecg export``: a bundle's model as an ONNX graph, for inference without PyTorch (ONNX Runtime).

The graph takes ``ecg`` [batch, leads, samples] float32 and, for a model trained with clinical variables,
``meta`` [batch, features] float32 (the bundle's encoder output), and returns ``output`` [batch, outputs]: the
raw outputs (standardised values or logits), exactly as the PyTorch model's ``forward``. The batch axis is
dynamic. Pre-processing, encoder, target scaling and post-hoc models stay in the bundle: ``aiecg predict
--engine onnx`` reads them from there and runs only the network through ONNX Runtime.

What ties the file to its bundle travels in the ONNX metadata (``metadata_props``): the bundle's weight digest
(:meth:`Bundle.weights_digest`), the input contract the network was trained for (leads, rate, window, R offset,
pre-processing, units, input and output sizes) and a SHA-256 of the graph itself (its nodes and weights).
:func:`check_export` refuses a file whose graph does not match its checksum (damaged), one exported from
another bundle, or one without these keys (another tool's file, or an export older than this check).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aiecg.bundle import Bundle, load_bundle
from aiecg.errors import AiecgError, BundleError
from aiecg.files import check_output, temp_path
from aiecg.io.checks import LIBRARY_MARK
from aiecg.predict import ONNX_HINT, OnnxModel

OPSET = 18
KEY_WEIGHTS, KEY_CONTRACT, KEY_GRAPH = "aiecg.bundle_weights_sha256", "aiecg.input_contract", "aiecg.graph_sha256"
"""The ONNX metadata keys of an aiecg export."""


class _Graph(nn.Module):
    """The model's forward with the clinical input only where the model has one (ONNX drops unused inputs)."""

    def __init__(self, model: nn.Module, n_meta: int):
        super().__init__()
        self.model, self.n_meta = model, n_meta

    def forward(self, ecg: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(ecg, meta if self.n_meta else None)


def export_model(model: nn.Module, n_leads: int, n_samples: int, n_meta: int, path: str | Path,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (in evaluation mode) as ONNX with a dynamic batch axis; returns the path.

    ``metadata`` goes into the file's ``metadata_props``, with the graph's own SHA-256 (:data:`KEY_GRAPH`).

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
        _stamp(tmp, metadata or {})
        tmp.replace(path)
    finally:
        quiet.setLevel(level)
        tmp.unlink(missing_ok=True)
    return path


def _graph_digest(proto: Any) -> str:
    """SHA-256 of the serialised graph (nodes, weights, inputs and outputs; not the model's metadata)."""
    return hashlib.sha256(proto.graph.SerializeToString()).hexdigest()


def _stamp(path: Path, metadata: dict[str, str]) -> None:
    """Add ``metadata`` and the graph's digest to the ONNX file at ``path`` (rewritten in place)."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in {**metadata, KEY_GRAPH: _graph_digest(proto)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def export_contract(bundle: Bundle) -> str:
    """The input contract an export serves, as canonical JSON: the bundle's input contract and the network's
    input and output sizes."""
    return json.dumps({"input_spec": bundle.input_spec, "n_leads": bundle.n_leads, "n_samples": bundle.n_samples,
                       "n_meta": bundle.n_meta, "n_outputs": bundle.n_outputs}, sort_keys=True, default=float)


def check_export(path: str | Path, bundle: Bundle) -> OnnxModel:
    """The ONNX Runtime model of ``path`` after checking that it is an intact export of ``bundle``.

    Raises:
        BundleError: the file is missing, unreadable, damaged (its graph does not match its checksum), carries
            no aiecg export metadata, or was exported from another bundle or for another input contract; each
            one line saying how to fix it.
    """
    try:
        import onnx
    except ImportError:
        raise AiecgError(f"checking an ONNX export needs onnx; {ONNX_HINT}") from None
    path = Path(path)
    again = f"export this bundle again: aiecg export --bundle BUNDLE --onnx {path}"
    if not path.is_file():
        raise BundleError(f"ONNX file {path} not found; {again}")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError and more for a junk file
        raise BundleError(f"{path} is not a readable ONNX file: it does not decode as an ONNX model; {again}"
                          f"{LIBRARY_MARK}{type(exc).__name__}]") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if not {KEY_WEIGHTS, KEY_CONTRACT, KEY_GRAPH} <= set(meta):
        raise BundleError(f"{path} carries no aiecg export metadata (written by another tool or an older aiecg), so "
                          f"nothing ties it to this bundle; {again}")
    if meta[KEY_GRAPH] != _graph_digest(proto):
        raise BundleError(f"{path}: checksum mismatch: the network in the file is damaged (or was edited); re-copy "
                          f"it or {again}")
    ours = bundle.weights_digest()
    if meta[KEY_WEIGHTS] != ours:
        raise BundleError(f"{path} is the export of another model (weights {meta[KEY_WEIGHTS][:12]}), not of this "
                          f"bundle (weights {ours[:12]}); pass the export of this bundle, or {again}")
    if meta[KEY_CONTRACT] != export_contract(bundle):
        raise BundleError(f"{path} was exported for another input contract than this bundle's; {again}")
    try:
        return OnnxModel(path)
    except AiecgError:
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{path}: ONNX Runtime cannot load the network in it; {again}"
                          f"{LIBRARY_MARK}{first}]") from None


def export_bundle(bundle: Bundle | str | Path, onnx_path: str | Path) -> dict[str, Any]:
    """Export a bundle's network to ``onnx_path``, with what ties it to the bundle in its metadata; returns what
    was written (inputs, shapes, opset)."""
    check_output(onnx_path, "file", "--onnx")
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    metadata = {KEY_WEIGHTS: bundle.weights_digest(), KEY_CONTRACT: export_contract(bundle)}
    path = export_model(bundle.build_model(), bundle.n_leads, bundle.n_samples, bundle.n_meta, onnx_path, metadata)
    inputs = {"ecg": ["batch", bundle.n_leads, bundle.n_samples]}
    if bundle.n_meta:
        inputs["meta"] = ["batch", bundle.n_meta]
    return {"onnx": str(path), "model": bundle.model_name, "inputs": inputs,
            "output": ["batch", bundle.n_outputs], "opset": OPSET}
