"""Model registry and factory (after timm's ``_registry``/``_factory``): the CLI's choices come from here."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from aiecg.errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_INPUTS: dict[str, tuple[str, ...]] = {}
_ADAPTERS_LOADED: set[str] = set()

ADAPTERS_VAR = "AIECG_MODELS"
"""Environment variable: adapter files (``path/to/adapter.py``) or importable modules, separated by ``os.pathsep``,
that register further models (e.g. an encoder published elsewhere, docs/encoders.md); loaded before any model is
listed or built, in every process (torchrun ranks and pool workers inherit the environment)."""


def load_adapters() -> None:
    """Import the adapters named in :data:`ADAPTERS_VAR` (each once per process).

    Raises:
        ConfigError: an adapter file that does not exist, or one that fails to import, named with the cause.
    """
    for entry in filter(None, (e.strip() for e in os.environ.get(ADAPTERS_VAR, "").split(os.pathsep))):
        if entry in _ADAPTERS_LOADED:
            continue
        _ADAPTERS_LOADED.add(entry)  # a failing adapter is reported once, not re-imported half-registered
        try:
            if entry.endswith(".py"):
                path = Path(entry)
                if not path.is_file():
                    raise ConfigError(f"{ADAPTERS_VAR}: adapter file {entry} does not exist; give the path of a "
                                      "Python file that registers models (docs/encoders.md), or unset it")
                name = f"aiecg_adapter_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[name] = module
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            else:
                importlib.import_module(entry)
        except ConfigError:
            raise
        except Exception as exc:  # an adapter's own error, named with the adapter
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise ConfigError(f"{ADAPTERS_VAR}: adapter {entry} failed to import ({type(exc).__name__}: {first}); "
                              "fix the adapter or remove it from the variable") from None


def register_model(name: str, inputs: tuple[str, ...] = ("median",)
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a constructor ``fn(n_leads, n_samples, n_meta, n_outputs, **kw) -> module`` for the
    ``inputs`` it is built to read (``aiecg train --input``: ``median``, ``rhythm``, ``both``)."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _source(_MODELS[name]) != _source(fn):  # the same file loaded twice is no clash
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        _INPUTS[name] = tuple(inputs)
        return fn

    return decorate


def _source(fn: Callable[..., Any]) -> tuple[str, str]:
    code = getattr(fn, "__code__", None)
    return (str(Path(code.co_filename).resolve()) if code else repr(fn), getattr(fn, "__qualname__", ""))


def list_models(input: str | None = None) -> list[str]:
    """The registered models (those registered for ``input``, when given), adapters' included."""
    load_adapters()
    return sorted(name for name in _MODELS if input is None or input in _INPUTS[name])


def check_model_input(name: str, input: str) -> None:
    """Refuse a model that is not registered for ``input``, naming those that are."""
    load_adapters()
    if name in _INPUTS and input not in _INPUTS[name]:
        raise ValueError(f"model {name!r} reads {' or '.join(_INPUTS[name])} input, not {input!r}; for --input {input} "
                         f"pick --arch {' or '.join(list_models(input)) or '(none registered)'}")


def create_model(name: str, n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Every model exposes ``forward(ecg, meta)`` returning raw outputs (logits for classification),
    ``forward_features(ecg)``, ``reset_head(n_outputs)`` and ``parameter_groups()`` ordered from head to input.
    """
    load_adapters()
    try:
        factory = _MODELS[name]
    except KeyError:
        adapters = os.environ.get(ADAPTERS_VAR, "")
        hint = (f"; a model from an adapter file needs it in {ADAPTERS_VAR} (now {adapters!r})" if adapters else
                f"; a model registered by an adapter file needs {ADAPTERS_VAR}=path/to/adapter.py")
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}{hint}") from None
    model = factory(n_leads=n_leads, n_samples=n_samples, n_meta=n_meta, n_outputs=n_outputs, **kwargs)
    model.model_name = name
    return model


def model_kwargs(model: nn.Module) -> dict[str, Any]:
    """Every constructor argument of ``model`` but the four shape arguments: with them,
    ``create_model(name, n_leads, n_samples, n_meta, n_outputs, **model_kwargs(model))`` rebuilds it exactly."""
    config = model.get_config()
    return {k: v for k, v in config.items() if k not in ("n_leads", "n_samples", "n_meta", "n_outputs")}
