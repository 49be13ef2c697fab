"""An adapter: an ECG encoder trained elsewhere, as an aiecg encoder bundle (docs/encoders.md).

One file does the three things an adapter needs:

1. it registers a model (``published_cnn``) whose feature blocks are the other project's layers, so that aiecg can
   build it, fine-tune it and save it in bundles;
2. it maps the checkpoint's weight names onto those blocks (``KEY_MAP``), leaving the other project's task head out;
3. it writes ``encoder.aiecg`` with the input contract of the store the encoder will read
   (:func:`aiecg.workflows.pretrain.save_encoder`).

Convert a checkpoint, then fine-tune from it (the adapter must be named in ``AIECG_MODELS`` wherever aiecg builds the
model: training, predict, export, explain)::

    python examples/encoder_adapter.py CHECKPOINT.pt --store data/synth/store --out runs/published/encoder.aiecg
    AIECG_MODELS=examples/encoder_adapter.py aiecg train --cohort data/synth/cohort.yaml --arch published_cnn \\
        --init runs/published/encoder.aiecg --name published

``PublishedCNN`` stands for the other project's network: in a real adapter, import it from their code instead of
defining it here. The checkpoint must have been trained on ECGs prepared as the store's are (leads, sampling rate,
median beat or strip, filters, mV): aiecg checks its own stores against the contract, but only the adapter's author
can know what the checkpoint was trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from aiecg.contract import input_contract
from aiecg.data.store import Store
from aiecg.ecg import MODEL_LEADS
from aiecg.models import ECGModel, create_model, register_model
from aiecg.workflows.pretrain import save_encoder

NAME = "published_cnn"
LEADS = MODEL_LEADS  # the leads the checkpoint reads, in its order
INPUT = "median"  # or "rhythm" for an encoder of 10 s strips (then prepare the store with --strips)
KEY_MAP = {"stem.": "blocks.0.", "stage1.": "blocks.1.", "stage2.": "blocks.2."}
"""Checkpoint weight-name prefixes -> the aiecg model's; weights under other prefixes (their head) are left out."""


class PublishedCNN(nn.Module):
    """The other project's network as their code defines it: a stem and two strided stages, then their task's
    classifier (which an aiecg run replaces with its own head)."""

    def __init__(self, n_leads: int = 8, width: int = 32, n_classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(n_leads, width, 7, padding=3, bias=False), nn.BatchNorm1d(width),
                                  nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv1d(width, 2 * width, 5, stride=2, padding=2, bias=False),
                                    nn.BatchNorm1d(2 * width), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv1d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False),
                                    nn.BatchNorm1d(2 * width), nn.ReLU())
        self.classifier = nn.Linear(2 * width, n_classes)

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.stage2(self.stage1(self.stem(ecg))).mean(dim=2))


class PublishedEncoder(ECGModel):
    """The other project's feature layers as aiecg blocks (applied in order, averaged over time), with aiecg's
    clinical-fusion head; every constructor argument is recorded, so a bundle rebuilds it."""

    def __init__(self, n_leads: int, n_samples: int, n_meta: int, n_outputs: int, width: int = 32,
                 conv_dropout: float = 0.2, head_hidden: int = 64, head_dropout: float = 0.5):
        super().__init__()
        network = PublishedCNN(n_leads, width)
        self.blocks = nn.ModuleList([network.stem, network.stage1, network.stage2])
        self.dropout = nn.Dropout(conv_dropout)
        self.n_features = 2 * width
        self._init_head(n_meta, n_outputs, head_hidden, head_dropout)


@register_model(NAME, inputs=(INPUT,))
def published_cnn(n_leads: int, n_samples: int, n_meta: int, n_outputs: int, **kw) -> PublishedEncoder:
    """The published CNN's feature layers with aiecg's head (``--model-kwargs width=...`` as in the checkpoint)."""
    return PublishedEncoder(n_leads, n_samples, n_meta, n_outputs, **kw)


def convert(checkpoint: str | Path, store: str | Path, out: str | Path, width: int = 32) -> Path:
    """The checkpoint's feature layers as an encoder bundle for the store ``store``'s input; refused (SystemExit,
    naming the weights) when the checkpoint does not fit the blocks."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)  # a training checkpoint, or the bare state dict
    contract = input_contract(LEADS, Store.open(store).manifest, INPUT)
    n_samples = contract["window"] if INPUT == "median" else contract["strips"]["samples"]
    model = create_model(NAME, len(LEADS), int(n_samples), 0, 1, width=width)
    blocks = {new + key[len(old):]: value for key, value in state.items() for old, new in KEY_MAP.items()
              if key.startswith(old)}
    missing, unexpected = model.load_state_dict(blocks, strict=False)
    missing = [key for key in missing if key.startswith("blocks.")]  # the head is aiecg's, trained later
    if missing or unexpected or not blocks:
        raise SystemExit(f"{checkpoint}: its weights do not fit {NAME} (width {width}): missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}; check KEY_MAP and --width")
    return save_encoder(model, contract, out, {"objective": "trained elsewhere", "source": str(checkpoint),
                                               "adapter": Path(__file__).name, "input": INPUT})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="the other project's checkpoint (a PyTorch state dict)")
    parser.add_argument("--store", required=True, help="a prepared store of the data the encoder will read")
    parser.add_argument("--out", required=True, help="where to write the encoder bundle (encoder.aiecg)")
    parser.add_argument("--width", type=int, default=32, help="the checkpoint's base width")
    args = parser.parse_args()
    print(convert(args.checkpoint, args.store, args.out, args.width))


if __name__ == "__main__":
    main()
