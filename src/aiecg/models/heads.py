"""The shared model interface and the clinical-fusion head."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from torch import nn

SHAPE_ARGS = ("n_leads", "n_samples", "n_meta", "n_outputs")
"""The constructor arguments every model takes first: the input contract and the output width."""


class FusionHead(nn.Module):
    """ECG features concatenated with clinical features, then a two-layer MLP.

    As in the reference models: linear -> LeakyReLU -> dropout -> linear. With ``n_meta == 0`` the head sees the
    ECG features only (the ``--excl_meta`` models).
    """

    def __init__(self, n_features: int, n_meta: int, n_outputs: int, hidden: int = 64, dropout: float = 0.6):
        super().__init__()
        self.n_meta = n_meta
        self.hidden = nn.Linear(n_features + n_meta, hidden)
        self.activation = nn.LeakyReLU()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, features: torch.Tensor, meta: torch.Tensor | None) -> torch.Tensor:
        if self.n_meta:
            if meta is None or meta.shape[1] != self.n_meta:
                got = None if meta is None else tuple(meta.shape)
                raise ValueError(f"model expects {self.n_meta} clinical features, got {got}")
            features = torch.cat([features, meta], dim=1)
        return self.out(self.dropout(self.activation(self.hidden(features))))


class ECGModel(nn.Module):
    """Base of every aiecg model (after braindecode's ``EEGModuleMixin``): one interface for training,
    fine-tuning and prediction.

    Subclasses take ``n_leads, n_samples, n_meta, n_outputs`` first, set ``self.blocks`` (an ``nn.ModuleList``
    from input to output), ``self.dropout`` (after pooling), ``self.n_features`` and call :meth:`_init_head`.
    Every constructor argument, defaults included, is recorded (:meth:`get_config`), so a bundle rebuilds the
    model it was trained with even if a default in the code changes later; :meth:`forward` checks the input
    shape against ``n_leads`` and ``n_samples``.
    """

    blocks: nn.ModuleList
    dropout: nn.Module
    n_features: int
    n_leads: int
    n_samples: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        @functools.wraps(init)
        def recording_init(self: ECGModel, *args: Any, **kw: Any) -> None:
            outermost = not hasattr(self, "_recording")
            if outermost:
                object.__setattr__(self, "_recording", True)
            init(self, *args, **kw)
            if outermost:
                signature = inspect.signature(init)  # read now: the defaults this call really used
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                extra = arguments.pop(next((n for n, p in signature.parameters.items()
                                            if p.kind is p.VAR_KEYWORD), "__none__"), {})
                self._config = {**arguments, **extra}
                self.n_leads, self.n_samples = int(self._config["n_leads"]), int(self._config["n_samples"])
                object.__delattr__(self, "_recording")

        cls.__init__ = recording_init  # type: ignore[method-assign]

    def get_config(self) -> dict[str, Any]:
        """Every constructor argument of this model, defaults included (tuples as lists, for JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._config.items()}

    def check_input(self, ecg: torch.Tensor) -> None:
        """Refuse an ECG batch of another shape than the model was built for ([batch, n_leads, n_samples])."""
        if ecg.dim() != 3 or ecg.shape[1] != self.n_leads or ecg.shape[2] != self.n_samples:
            raise ValueError(f"model expects ECG batches of shape [batch, {self.n_leads} leads, {self.n_samples} "
                             f"samples], got {list(ecg.shape)}")

    def _init_head(self, n_meta: int, n_outputs: int, hidden: int, dropout: float) -> None:
        self.n_meta, self.n_outputs, self._hidden, self._head_dropout = n_meta, n_outputs, hidden, dropout
        self.head = FusionHead(self.n_features, n_meta, n_outputs, hidden, dropout)

    def forward_features(self, ecg: torch.Tensor) -> torch.Tensor:
        """Pooled ECG features [batch, n_features]: the blocks in order, global average pooling over time, then
        ``self.dropout``."""
        for block in self.blocks:
            ecg = block(ecg)
        return self.dropout(ecg.mean(dim=2))

    def forward(self, ecg: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(ecg)
        return self.head(self.forward_features(ecg), meta)

    def reset_head(self, n_outputs: int) -> None:
        """A fresh head with ``n_outputs`` outputs (for a new target), keeping the ECG feature extractor."""
        self._init_head(self.n_meta, n_outputs, self._hidden, self._head_dropout)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """Parameters grouped for staged unfreezing, from the head to the input block."""
        return [list(self.head.parameters())] + [list(block.parameters()) for block in reversed(self.blocks)]
