"""A trained model as one self-describing, pickle-free file.

The file is a safetensors container: the weights as tensors, and in its string metadata one JSON document with
every constructor argument of the model, the TargetSpec, the clinical-encoder parameters, the input contract
(leads, sampling rate, window, R offset, filters including the mains notch, beat settings, units), target
scaling, learned thresholds, versions and training metadata. Loading executes no pickle.

The embedded SHA-256 over the weights and the JSON detects accidental corruption (a truncated copy, a flipped
bit); it is NOT evidence against deliberate tampering, since anyone who edits the file can recompute it. Trust
a bundle as you would trust any file from its source.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from aiecg import __version__
from aiecg.contract import INPUTS, check_input_contract, flatten, input_kind
from aiecg.data.dataset import TargetScaling
from aiecg.data.features import ClinicalEncoder
from aiecg.data.targets import TargetSpec
from aiecg.ecg import normalise_lead_name
from aiecg.errors import BundleError, one_line
from aiecg.files import atomic_write_bytes
from aiecg.models import create_model
from aiecg.models.heads import ECGModel

FORMAT = "aiecg-bundle"
FORMAT_VERSION = 1
ENCODER_KIND = "encoder"
"""``training["kind"]`` of a pre-trained encoder (``aiecg pretrain``): its head is untrained, so it only starts a
model (``aiecg train --init``) and is refused wherever a bundle predicts."""


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
    source: str = field(default="", compare=False, repr=False)
    """The file the bundle was loaded from (not saved in it): what its errors name."""

    @property
    def where(self) -> str:
        """The bundle as its errors name it: its file, where it was loaded from one."""
        return self.source or "the model bundle"

    def build_model(self) -> ECGModel:
        """The model with the bundle's weights, in evaluation mode.

        Raises:
            BundleError: one line naming the file, when its configuration cannot build a model or its weights do
                not fit the model built (a damaged or hand-edited bundle, or one of another aiecg version).
        """
        fix = REFIX
        name = f"{self.model_name!r:.60}"
        try:
            model = create_model(self.model_name, self.n_leads, self.n_samples, self.n_meta, self.n_outputs,
                                 **self.model_kwargs)
        except (TypeError, ValueError, RuntimeError, KeyError) as exc:
            raise BundleError(f"{self.where}: its saved configuration cannot build the model {name} "
                              f"({one_line(exc)}); {fix}") from None
        try:
            missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        except (RuntimeError, ValueError, TypeError) as exc:  # a tensor of another shape
            raise BundleError(f"{self.where}: its weights do not fit the model {name} its configuration builds "
                              f"({one_line(exc)}); {fix}") from None
        if missing or unexpected:
            raise BundleError(f"{self.where}: its weights do not fit the model {name} its configuration builds "
                              f"({len(missing)} weight(s) missing, e.g. {list(missing)[:2]}; {len(unexpected)} "
                              f"unexpected, e.g. {list(unexpected)[:2]}); {fix}")
        return model.eval()

    def weights_digest(self) -> str:
        """SHA-256 over the weights alone (names and bytes): what ties an ONNX export to this bundle."""
        return _digest(self.state_dict, "")

    @property
    def is_encoder(self) -> bool:
        """A pre-trained encoder (``aiecg pretrain``), not a model that predicts."""
        return self.training.get("kind") == ENCODER_KIND

    @property
    def leads(self) -> list[str]:
        return list(self.input_spec["leads"])

    @property
    def input_kind(self) -> str:
        """What the model reads: ``median``, ``rhythm`` or ``both`` (:data:`aiecg.contract.INPUTS`)."""
        return input_kind(self.input_spec)

    def check_input(self, data_spec: dict[str, Any], where: str, fix: str) -> None:
        """Refuse data prepared otherwise than this model's training data
        (:func:`aiecg.contract.check_input_contract`)."""
        check_input_contract(self.input_spec, data_spec, where, fix)

    def _document(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "model_name": self.model_name,
            "model_kwargs": self.model_kwargs, "n_leads": self.n_leads, "n_samples": self.n_samples,
            "n_meta": self.n_meta, "n_outputs": self.n_outputs, "target": self.target.to_dict(),
            "input_spec": self.input_spec, "encoder": self.encoder.to_dict() if self.encoder else None,
            "scaling": {"mean": list(self.scaling.mean), "sd": list(self.scaling.sd)} if self.scaling else None,
            "thresholds": self.thresholds, "training": self.training,
            "versions": self.versions or current_versions(),
        }


def current_versions() -> dict[str, str]:
    """The installed versions a bundle records (aiecg's from the installed package's metadata)."""
    return {"aiecg": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


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


REFIX = "re-copy the bundle from its source, or re-export the model with the aiecg that trained it"
"""How to fix a damaged bundle (the end of every error that finds one)."""

_HEADER_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "model_name": str, "model_kwargs": dict, "n_leads": int,
    "n_samples": int, "n_meta": int, "n_outputs": int, "target": dict, "input_spec": dict,
    "encoder": (dict, type(None)), "scaling": (dict, type(None)), "thresholds": dict, "training": dict,
    "versions": dict,
}


def _malformed(path: Path, what: str) -> BundleError:
    """The one error of a bundle whose header is malformed: the file, what is wrong, the fix."""
    return BundleError(f"{path}: malformed bundle header: {what}; {REFIX}")


def _check_header(path: Path, data: Any) -> None:
    if not isinstance(data, dict):
        raise _malformed(path, "not a JSON object")
    if data.get("format") != FORMAT or not isinstance(data.get("format_version"), int) \
            or data["format_version"] > FORMAT_VERSION:
        raise BundleError(f"{path}: unsupported bundle format {data.get('format')!r:.60} "
                          f"v{data.get('format_version')!s:.20}; this aiecg reads {FORMAT} v{FORMAT_VERSION}: use "
                          "the aiecg version that wrote it, or re-export the model with this one")
    for key, kind in _HEADER_SCHEMA.items():
        if key not in data:
            raise _malformed(path, f"'{key}' is missing")
        if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            raise _malformed(path, f"'{key}' has type {type(data[key]).__name__}")
    for key in ("leads", "fs", "window", "r_offset", "preprocessing"):
        if key not in data["input_spec"]:
            raise _malformed(path, f"input_spec lacks '{key}'")


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    """The header's fields against each other (a forged or hand-edited bundle, its checksum recomputed): the
    contract's leads are the model's input leads, the target scaling has one finite mean and positive SD per
    output, the thresholds are mappings."""
    def bad(what: str) -> BundleError:
        return _malformed(path, what)

    for key, value in flatten(data["model_kwargs"]).items():
        if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
            raise bad(f"model_kwargs.{key} is {value!r:.60}, not a finite number")  # JSON's NaN, Infinity
    for key, least in (("n_leads", 1), ("n_samples", 1), ("n_outputs", 1), ("n_meta", 0)):
        if data[key] < least:
            raise bad(f"'{key}' is {data[key]}; a model has at least {least}")
    leads = data["input_spec"]["leads"]
    if not isinstance(leads, list) or len(leads) != data["n_leads"] or not all(isinstance(x, str) for x in leads):
        raise bad(f"input_spec.leads ({leads!r:.80}) must list the model's {data['n_leads']} input leads")
    for lead in leads:
        try:
            normalise_lead_name(lead)
        except ValueError:
            raise bad(f"input_spec.leads names an unknown lead {lead!r}") from None
    kind = input_kind(data["input_spec"])
    if kind not in INPUTS:
        raise bad(f"input_spec.input is {kind!r}, not one of {', '.join(INPUTS)}")
    strips = data["input_spec"].get("strips")
    if kind != "median" and not (isinstance(strips, dict) and {"fs", "seconds", "samples"} <= set(strips)):
        raise bad(f"a model of input {kind!r} needs input_spec.strips (fs, seconds, samples)")
    if data["target"].get("n_outputs") != data["n_outputs"]:
        raise bad(f"the target has {data['target'].get('n_outputs')} outputs, the model {data['n_outputs']}")
    scaling = data["scaling"]
    if scaling is not None:
        mean, sd = scaling.get("mean"), scaling.get("sd")
        if not (isinstance(mean, list) and isinstance(sd, list) and len(mean) == len(sd) == data["n_outputs"]
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in mean + sd)
                and all(v > 0 for v in sd)):
            raise bad(f"scaling must hold {data['n_outputs']} finite means and positive SDs")
    thresholds = data["thresholds"]
    for key in ("posthoc", "conformal"):
        if not isinstance(thresholds.get(key) or {}, dict):
            raise bad(f"thresholds.{key} must be a mapping")


def load_bundle(path: str | Path, allow_encoder: bool = False) -> Bundle:
    """Read a bundle written by :func:`save_bundle`; a pre-trained encoder only with ``allow_encoder``.

    Raises:
        BundleError: the file is missing, not an aiecg bundle, damaged (checksum mismatch: the SHA-256 detects
            corruption, not deliberate tampering), or its header is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"model bundle {path} not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise BundleError(f"{path} is not a readable aiecg bundle ({one_line(exc)}); pass a .aiecg file written by "
                          f"aiecg train, or {REFIX}") from None
    document = metadata.get("aiecg")
    if document is None:
        raise BundleError(f"{path} is a safetensors file but not an aiecg bundle (no 'aiecg' metadata); pass a "
                          ".aiecg file written by aiecg train")
    if metadata.get("sha256") != _digest(tensors, document):
        raise BundleError(f"{path}: checksum mismatch: the file is damaged (or was edited); re-copy or re-export "
                          "the model (the checksum detects corruption, it is not a signature)")
    try:
        data = json.loads(document)
    except json.JSONDecodeError as exc:
        raise _malformed(path, f"not JSON ({one_line(exc)})") from None
    _check_header(path, data)
    _check_fields(path, data)
    if data["training"].get("kind") == ENCODER_KIND and not allow_encoder:
        raise BundleError(f"{path} is a pre-trained encoder (aiecg pretrain), not a model that predicts: fine-tune "
                          f"it first (aiecg train --init {path} ...) and use that run's model.aiecg")
    try:
        scaling = data.get("scaling")
        return Bundle(
            model_name=data["model_name"], model_kwargs=data["model_kwargs"], n_leads=data["n_leads"],
            n_samples=data["n_samples"], n_meta=data["n_meta"], n_outputs=data["n_outputs"],
            target=TargetSpec.from_dict(data["target"]), input_spec=data["input_spec"], state_dict=tensors,
            encoder=ClinicalEncoder.from_dict(data["encoder"]) if data.get("encoder") else None,
            scaling=TargetScaling(tuple(scaling["mean"]), tuple(scaling["sd"])) if scaling else None,
            thresholds=data["thresholds"], training=data["training"], versions=data["versions"], source=str(path),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _malformed(path, f"{type(exc).__name__}: {one_line(exc)}") from None
