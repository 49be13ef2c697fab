"""A trained model as one self-describing, pickle-free file.

The file is a safetensors container: the weights as tensors, and in its string metadata one JSON document with
the model configuration, the TargetSpec, the clinical-encoder parameters, the input specification (leads,
sampling rate, window, pre-processing), target scaling, learned thresholds, versions and training metadata.
A SHA-256 over the weights and the JSON detects tampering. Loading executes no pickle.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from aiecg import __version__
from aiecg.data.dataset import TargetScaling
from aiecg.data.features import ClinicalEncoder
from aiecg.data.targets import TargetSpec
from aiecg.errors import BundleError
from aiecg.files import atomic_write_bytes
from aiecg.models import create_model
from aiecg.models.heads import ECGModel

FORMAT = "aiecg-bundle"
FORMAT_VERSION = 1


@dataclass
class Bundle:
    """Everything needed to apply a trained model to new ECGs."""

    model_name: str
    model_kwargs: dict[str, Any]
    n_leads: int
    n_samples: int
    n_meta: int
    n_outputs: int
    target: TargetSpec
    input_spec: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    encoder: ClinicalEncoder | None = None
    scaling: TargetScaling | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def build_model(self) -> ECGModel:
        """The model with the bundle's weights, in evaluation mode."""
        model = create_model(self.model_name, self.n_leads, self.n_samples, self.n_meta, self.n_outputs,
                             **self.model_kwargs)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def _document(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "model_name": self.model_name,
            "model_kwargs": self.model_kwargs, "n_leads": self.n_leads, "n_samples": self.n_samples,
            "n_meta": self.n_meta, "n_outputs": self.n_outputs, "target": self.target.to_dict(),
            "input_spec": self.input_spec, "encoder": self.encoder.to_dict() if self.encoder else None,
            "scaling": {"mean": list(self.scaling.mean), "sd": list(self.scaling.sd)} if self.scaling else None,
            "thresholds": self.thresholds, "training": self.training,
            "versions": self.versions or {"aiecg": __version__, "torch": torch.__version__,
                                          "numpy": np.__version__, "python": platform.python_version()},
        }


def _digest(tensors: dict[str, torch.Tensor], document: str) -> str:
    sha = hashlib.sha256(document.encode())
    for name in sorted(tensors):
        sha.update(name.encode())
        sha.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def save_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write ``bundle`` to ``path`` (conventionally ``*.aiecg``) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in bundle.state_dict.items()}
    document = json.dumps(bundle._document(), sort_keys=True, default=float)
    data = save(tensors, metadata={"aiecg": document, "sha256": _digest(tensors, document)})
    atomic_write_bytes(path, data)
    return path


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle written by :func:`save_bundle`.

    Raises:
        BundleError: the file is missing, not an aiecg bundle, or its content does not match its checksum.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"model bundle {path} not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{path} is not a readable aiecg bundle ({exc})") from None
    document = metadata.get("aiecg")
    if document is None:
        raise BundleError(f"{path} is a safetensors file but not an aiecg bundle (no 'aiecg' metadata)")
    if metadata.get("sha256") != _digest(tensors, document):
        raise BundleError(f"{path}: checksum mismatch, the file was modified or damaged; re-export the model")
    data = json.loads(document)
    if data.get("format") != FORMAT or int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleError(f"{path}: unsupported bundle format {data.get('format')} v{data.get('format_version')}")
    scaling = data.get("scaling")
    return Bundle(
        model_name=data["model_name"], model_kwargs=data["model_kwargs"], n_leads=data["n_leads"],
        n_samples=data["n_samples"], n_meta=data["n_meta"], n_outputs=data["n_outputs"],
        target=TargetSpec.from_dict(data["target"]), input_spec=data["input_spec"], state_dict=tensors,
        encoder=ClinicalEncoder.from_dict(data["encoder"]) if data.get("encoder") else None,
        scaling=TargetScaling(tuple(scaling["mean"]), tuple(scaling["sd"])) if scaling else None,
        thresholds=data.get("thresholds", {}), training=data.get("training", {}), versions=data.get("versions", {}),
    )
