"""Attributions of a model's output to its ECG and clinical inputs.

- Integrated gradients (Sundararajan, Taly & Yan, ICML 2017) through captum, on both inputs at once, with the
  convergence delta: completeness says the attributions sum to output(x) - output(baseline); the delta is how far
  the Riemann approximation is from that.
- Class activation maps for the FCN (Zhou et al., CVPR 2016; Wang et al. 2017 for time series). Global average
  pooling is a mean over time, and the fusion head is linear at each participant's LeakyReLU activation pattern,
  so the ECG part of the output splits exactly into one term per time step of the last feature map.

Outputs are the model's raw outputs (standardised value for regression targets, logit for LVH).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aiecg.errors import AiecgError


class ExplainError(AiecgError):
    """Explanations cannot be computed as asked (e.g. captum is not installed)."""


def _captum():
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        raise ExplainError("explanations need captum: pip install 'aiecg[explain]'") from None
    return IntegratedGradients


@dataclass
class Attributions:
    """Integrated-gradients attributions of output ``output_index`` for n participants.

    Attributes:
        ecg: [n, leads, samples]; meta: [n, features] (empty when the model has no clinical input).
        outputs, baseline_outputs: raw model outputs at the inputs and at the baselines, [n].
        delta: captum's convergence delta per participant (sum of attributions - (output - baseline output)).
    """

    ecg: np.ndarray
    meta: np.ndarray
    outputs: np.ndarray
    baseline_outputs: np.ndarray
    delta: np.ndarray


def integrated_gradients(model: nn.Module, ecg: np.ndarray, meta: np.ndarray, ecg_baseline: np.ndarray | None = None,
                         meta_baseline: np.ndarray | None = None, output_index: int = 0, n_steps: int = 50,
                         max_evaluations: int = 128) -> Attributions:
    """Integrated gradients of one output on the ECG and clinical inputs together.

    Args:
        ecg, meta: model inputs [n, leads, samples] and [n, features].
        ecg_baseline: [leads, samples], or one per participant [n, leads, samples] (default all zeros: the
            isoelectric line; see :mod:`aiecg.explain.baselines` for why an ECG-like baseline is better).
        meta_baseline: [features] (default zeros; pass the encoded typical training participant).
        max_evaluations: model evaluations held at once (participants per call x ``n_steps``); bounds memory,
            which grows with it (about 2 MB per evaluation for the FCN on 8 x 400 inputs: 64 participants x
            32 steps held 4 GB).
    """
    IntegratedGradients = _captum()
    model = model.eval()
    has_meta = meta.shape[1] > 0

    def forward(x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        if m is None:
            m = torch.zeros((x.shape[0], 0), dtype=x.dtype)
        return model(x, m)[:, output_index]

    ig = IntegratedGradients(forward)
    eb = torch.zeros(ecg.shape[1:]) if ecg_baseline is None else torch.as_tensor(ecg_baseline, dtype=torch.float32)
    mb = torch.zeros(meta.shape[1:]) if meta_baseline is None else torch.as_tensor(meta_baseline, dtype=torch.float32)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ecg", "meta", "out", "base", "delta")}
    batch_size = max(1, max_evaluations // n_steps)  # each participant is n_steps evaluations along its path
    for start in range(0, len(ecg), batch_size):
        x = torch.as_tensor(ecg[start : start + batch_size], dtype=torch.float32)
        m = torch.as_tensor(meta[start : start + batch_size], dtype=torch.float32)
        x0 = (eb[start : start + batch_size] if eb.dim() == 3 else eb.expand_as(x)).contiguous()
        m0 = mb.expand_as(m).contiguous()
        if has_meta:
            (ax, am), delta = ig.attribute((x, m), baselines=(x0, m0), n_steps=n_steps, method="gausslegendre",
                                           return_convergence_delta=True)
        else:
            ax, delta = ig.attribute(x, baselines=x0, n_steps=n_steps, method="gausslegendre",
                                     return_convergence_delta=True)
            am = torch.zeros_like(m)
        with torch.no_grad():
            out, base = forward(x, m if has_meta else None), forward(x0, m0 if has_meta else None)
        parts["ecg"].append(ax.detach().numpy())
        parts["meta"].append(am.detach().numpy())
        parts["out"].append(out.numpy())
        parts["base"].append(base.numpy())
        parts["delta"].append(delta.detach().numpy())
    joined = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return Attributions(joined["ecg"].astype(np.float32), joined["meta"].astype(np.float32), joined["out"],
                        joined["base"], joined["delta"])


@torch.no_grad()
def fcn_cam(model: nn.Module, ecg: np.ndarray, meta: np.ndarray,
            output_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact class activation map of a model with blocks -> global average pooling -> fusion head.

    Returns:
        cam [n, T'] over the last feature map's time steps, whose mean over time is the ECG part of the output,
        and rest [n], the part from the clinical inputs and biases; ``cam.mean(1) + rest`` is the raw output.
    """
    model = model.eval()
    x = torch.as_tensor(ecg, dtype=torch.float32)
    m = torch.as_tensor(meta, dtype=torch.float32)
    features = x
    for block in model.blocks:
        features = block(features)  # [n, C, T']
    head = model.head
    w1, b1 = head.hidden.weight, head.hidden.bias  # [H, C + M], [H]
    n_ecg = features.shape[1]
    pooled = features.mean(dim=2)
    z = pooled @ w1[:, :n_ecg].T + b1 + (m @ w1[:, n_ecg:].T if head.n_meta else 0.0)
    slope = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, head.activation.negative_slope))
    w2 = head.out.weight[output_index] * slope  # [n, H]: the head's effective linear weights per participant
    per_time = torch.einsum("hc,nct->nht", w1[:, :n_ecg], features)  # hidden pre-activation from each time step
    cam = torch.einsum("nh,nht->nt", w2, per_time)
    rest = (w2 * (b1 + (m @ w1[:, n_ecg:].T if head.n_meta else 0.0))).sum(dim=1) + head.out.bias[output_index]
    return cam.numpy(), rest.numpy()


def upsample(cam: np.ndarray, n_samples: int) -> np.ndarray:
    """A map over T' feature-map steps stretched to the input's ``n_samples`` (each step covers n_samples/T')."""
    index = np.minimum((np.arange(n_samples) * cam.shape[1]) // n_samples, cam.shape[1] - 1)
    return cam[:, index]
