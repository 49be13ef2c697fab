"""Model registry and factory (after timm's ``_registry``/``_factory``): the CLI's choices come from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_INPUTS: dict[str, tuple[str, ...]] = {}


def register_model(name: str, inputs: tuple[str, ...] = ("median",)
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a constructor ``fn(n_leads, n_samples, n_meta, n_outputs, **kw) -> module`` for the
    ``inputs`` it is built to read (``aiecg train --input``: ``median``, ``rhythm``, ``both``)."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        _INPUTS[name] = tuple(inputs)
        return fn

    return decorate


def list_models(input: str | None = None) -> list[str]:
    """The registered models (those registered for ``input``, when given)."""
    return sorted(name for name in _MODELS if input is None or input in _INPUTS[name])


def check_model_input(name: str, input: str) -> None:
    """Refuse a model that is not registered for ``input``, naming those that are."""
    if name in _INPUTS and input not in _INPUTS[name]:
        raise ValueError(f"model {name!r} reads {' or '.join(_INPUTS[name])} input, not {input!r}; for --input {input} "
                         f"pick --arch {' or '.join(list_models(input)) or '(none registered)'}")


def create_model(name: str, n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Every model exposes ``forward(ecg, meta)`` returning raw outputs (logits for classification),
    ``forward_features(ecg)``, ``reset_head(n_outputs)`` and ``parameter_groups()`` ordered from head to input.
    """
    try:
        factory = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None
    model = factory(n_leads=n_leads, n_samples=n_samples, n_meta=n_meta, n_outputs=n_outputs, **kwargs)
    model.model_name = name
    return model


def model_kwargs(model: nn.Module) -> dict[str, Any]:
    """Every constructor argument of ``model`` but the four shape arguments: with them,
    ``create_model(name, n_leads, n_samples, n_meta, n_outputs, **model_kwargs(model))`` rebuilds it exactly."""
    config = model.get_config()
    return {k: v for k, v in config.items() if k not in ("n_leads", "n_samples", "n_meta", "n_outputs")}
