"""``aiecg pretrain``: an ECG encoder learnt from every usable record of one or more stores, labelled or not.

stores -> usable median beats, or 10 s rhythm strips with ``input: rhythm`` (minus any excluded ids) -> a seeded
hold-out split of records -> masked
reconstruction (:mod:`aiecg.train.pretrain`) trained by the same loop as supervised models (early stopping,
resume after a kill, DDP under torchrun, the CPU thread budget) -> ``encoder.aiecg``: a bundle with the same input
contract as a model bundle, marked as an encoder so that it cannot be used to predict before it is fine-tuned
(``aiecg train --init encoder.aiecg``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiecg import __version__
from aiecg.bundle import ENCODER_KIND, Bundle, save_bundle
from aiecg.config import AugmentConfig, PretrainConfig
from aiecg.contract import check_input_contract, input_contract
from aiecg.data.augment import build_augmentation, for_input_leads
from aiecg.data.dataset import Arrays, ECGDataset
from aiecg.data.selection import ids_digest, paced_record
from aiecg.data.store import Store
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.errors import ConfigError
from aiecg.files import atomic_write_text
from aiecg.models import ECGModel, create_model
from aiecg.models.registry import check_model_input, model_kwargs
from aiecg.runio import run_output
from aiecg.threads import apply_budget, local_world_size
from aiecg.train.distributed import is_main_process
from aiecg.train.loop import fit
from aiecg.train.pretrain import MaskedReconstruction, MaskedReconstructionLoss, hidden_energy

log = logging.getLogger("aiecg")

PRETRAIN_TARGET = TargetSpec(name="MASKED_RECONSTRUCTION", kind=TaskKind.REGRESSION,
                             outputs=("masked_reconstruction",), stems=("masked_reconstruction",), n_outputs=1)
"""What an encoder bundle's (untrained) head stands for: nothing to predict until it is fine-tuned."""


@dataclass
class PretrainResult:
    run_dir: Path
    encoder_path: Path
    summary: dict[str, Any]


def _unlabelled(config: PretrainConfig) -> tuple[np.ndarray, dict[str, Any], list[dict[str, Any]]]:
    """Median beats (or rhythm strips) of every usable record of every store (less the excluded ids), the common
    input contract and a row per store (records used, excluded)."""
    if not config.stores:
        raise ConfigError("pre-training needs at least one prepared store: --stores path/to/store[,another]")
    excluded = _excluded(config)
    contract, arrays, rows = None, [], []
    for root in config.stores:
        store = Store.open(root)
        if config.input != "median" and "strips" not in store.manifest:
            raise ConfigError(f"store {root} holds no rhythm strips (it was prepared without --strips); pre-training "
                              f"with --input {config.input} needs them: prepare it again with `aiecg prepare "
                              "--cohort COHORT.yaml --strips --out NEW_STORE`")
        spec = input_contract(config.leads, store.manifest, config.input,
                              include_paced=paced_record(config.include_paced, store))
        if contract is None:
            contract = spec
        else:
            check_input_contract(contract, spec, f"store {root}",
                                 f"prepare every store of a pre-training run with the settings of {config.stores[0]}")
            if "include_paced" not in spec:  # a store that cannot tell whether it holds paced ECGs: nor can the run
                contract.pop("include_paced", None)
        usable = sorted(store.usable_ids)
        paced: set[str] = set()
        if not config.include_paced and "paced" in store.index.columns:  # flagged by prepare; as training does
            flagged = store.index["paced"].fillna("").astype(str) != ""
            paced = set(store.index.loc[flagged, "id"])
        ids = [i for i in usable if i not in excluded and i not in paced]
        rows.append({"store": str(root), "usable": len(usable), "used": len(ids),
                     "excluded": sum(i in excluded for i in usable), "paced_left_out": sum(i in paced for i in usable)})
        if ids:
            arrays.append(store.strips_of(ids, config.leads) if config.input == "rhythm"
                          else store.medians(ids, config.leads))
    if not arrays or sum(len(a) for a in arrays) < 4:
        raise ConfigError(f"pre-training needs at least 4 usable records; the stores hold {rows}")
    return np.concatenate(arrays), contract, rows


def _as_arrays(ecg: np.ndarray) -> Arrays:
    n = len(ecg)
    return Arrays(ids=np.arange(n).astype(str), is_male=np.zeros(n, np.int64), ecg=ecg,
                  meta=np.zeros((n, 0), np.float32), target=np.zeros((n, 1), np.float32))


def pretrain_run(config: PretrainConfig, progress: bool = True) -> PretrainResult:
    """Pre-train an encoder as configured; writes config.yaml, epochs.csv, checkpoint.pt, encoder.aiecg and
    pretrain.json (records per store, the hold-out loss against the all-zero reference) to ``config.out``, as one
    set (:func:`aiecg.runio.run_output`: an interrupted run keeps only its partial folder, for ``--resume``)."""
    if not 0 < config.val_fraction < 1:
        raise ConfigError(f"--val-fraction must lie strictly between 0 and 1, got {config.val_fraction}")
    if config.input not in ("median", "rhythm"):
        raise ConfigError(f"--input {config.input!r}: pre-training reads one input, 'median' (median beats) or "
                          "'rhythm' (10 s strips); a model of both inputs starts from one encoder of each (pre-train "
                          "them apart)")
    try:  # an encoder of another input (dual would split the median beat in halves) is refused before any work
        check_model_input(config.arch, config.input)
    except ValueError as exc:
        raise ConfigError(f"pre-training with --input {config.input}: {exc}") from None
    run_dir = Path(config.out)
    main = is_main_process()
    config = dataclasses.replace(config, fit=dataclasses.replace(
        config.fit, threads=apply_budget(config.fit.threads, workers=local_world_size())))
    ecg, contract, per_store = _unlabelled(config)
    with run_output(run_dir, resume=config.resume, writer=main, flag="--out") as work:
        result = _pretrain_into(work, run_dir, config, ecg, contract, per_store, main, progress)
    return result


def _pretrain_into(work: Path, run_dir: Path, config: PretrainConfig, ecg: np.ndarray, contract: dict[str, Any],
                   per_store: list[dict[str, Any]], main: bool, progress: bool) -> PretrainResult:
    """:func:`pretrain_run`, writing into ``work`` (the run's partial folder) what will be ``run_dir``."""
    if main:
        config.save(work / "config.yaml")
    order = np.random.default_rng(config.split_seed).permutation(len(ecg))
    n_val = max(1, int(round(config.val_fraction * len(ecg))))
    val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
    fs = float(contract["strips"]["fs"] if config.input == "rhythm" else contract["fs"])
    patch = max(1, int(round(config.patch_ms * fs / 1000)))
    torch.manual_seed(config.fit.seed)  # initialisation
    encoder = create_model(config.arch, len(config.leads), ecg.shape[2], 0, 1, **config.model_kwargs)
    network = MaskedReconstruction(encoder, patch, config.mask_ratio)
    fit_config = config.fit
    if config.augment and fit_config.augment is None:
        fit_config = dataclasses.replace(fit_config, augment=AugmentConfig())  # mixup stays off (its default)
    if fit_config.augment is not None:
        fit_config = dataclasses.replace(fit_config, augment=for_input_leads(fit_config.augment, config.leads))
        build_augmentation(fit_config.augment)  # an unknown augmentation or option: refused before training
    train, val = ECGDataset(_as_arrays(ecg[train_rows])), ECGDataset(_as_arrays(ecg[val_rows]))
    result = fit(network, train, val, MaskedReconstructionLoss(), fit_config, work, progress, resume=config.resume)
    encoder_path = run_dir / "encoder.aiecg"  # where it will be once the run is complete
    if not main:
        return PretrainResult(run_dir, encoder_path, {})
    reference = hidden_energy(val.ecg, network.cpu())
    training = {"kind": ENCODER_KIND, "objective": "masked reconstruction (ST-MEM-style lead x time patches)",
                "input": config.input,
                "patch_samples": patch, "patch_ms": config.patch_ms, "mask_ratio": config.mask_ratio,
                "stores": per_store, "n_train": len(train_rows), "n_val": len(val_rows),
                "excluded_ids_sha256": ids_digest(np.array(sorted(_excluded(config)))) if config.exclude_ids else None,
                "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                "zero_reconstruction_val_loss": reference, "epochs_run": result.epochs_run,
                "seconds": result.seconds, "aiecg": __version__}
    save_encoder(encoder, contract, work / encoder_path.name, training)
    summary = {"encoder": str(encoder_path), **{k: training[k] for k in (
        "n_train", "n_val", "best_epoch", "best_val_loss", "zero_reconstruction_val_loss", "epochs_run")},
        "explained_hidden_energy": 1 - result.best_val_loss / reference if reference > 0 else None,
        "stores": per_store}
    atomic_write_text(work / "pretrain.json", json.dumps(summary, indent=2, default=float))
    return PretrainResult(run_dir, encoder_path, summary)


def save_encoder(encoder: ECGModel, contract: dict[str, Any], path: str | Path, training: dict[str, Any]) -> Path:
    """Write ``encoder`` (any registered model; its feature blocks are what a run takes over) as an encoder bundle
    at ``path``: the input contract of the data it reads (:func:`aiecg.contract.input_contract` of a store) and
    ``training`` (what made it; ``kind`` is set to encoder), refused wherever a bundle predicts until a run starts
    from it (``aiecg train --init``). Used by ``aiecg pretrain`` and by adapters of encoders trained elsewhere
    (docs/encoders.md)."""
    if (getattr(encoder, "n_meta", None), getattr(encoder, "n_outputs", None)) != (0, 1):
        raise ConfigError("build the encoder with create_model(name, n_leads, n_samples, 0, 1): no clinical inputs "
                          "and one output (its head is not used; a run starting from it makes its own)")
    if getattr(encoder, "n_leads", None) != len(contract["leads"]):
        raise ConfigError(f"the encoder reads {getattr(encoder, 'n_leads', '?')} leads, the input contract "
                          f"{len(contract['leads'])} ({', '.join(contract['leads'])})")
    bundle = Bundle(model_name=encoder.model_name, model_kwargs=model_kwargs(encoder), n_leads=encoder.n_leads,
                    n_samples=encoder.n_samples, n_meta=0, n_outputs=1, target=PRETRAIN_TARGET, input_spec=contract,
                    state_dict=encoder.state_dict(), training={**training, "kind": ENCODER_KIND})
    save_bundle(bundle, path)
    return Path(path)


def _excluded(config: PretrainConfig) -> set[str]:
    """The record ids of ``--exclude-ids`` (none without it)."""
    if not config.exclude_ids:
        return set()
    path = Path(config.exclude_ids)
    if not path.is_file():
        raise ConfigError(f"--exclude-ids {path}: no such file (a text file of record ids, one per line)")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}
