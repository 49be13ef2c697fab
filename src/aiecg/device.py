"""Where tensors run."""

from __future__ import annotations

import torch

from aiecg.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; a request for CUDA without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)
