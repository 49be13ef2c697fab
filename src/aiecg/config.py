"""Typed configuration: loaded from YAML, overridden by command-line flags, saved next to every run.

Every dataclass here is plain data (no torch), so loading or validating a configuration is cheap; the command
line's flags are generated from these fields (:mod:`aiecg.cliopts`), so an option is never mapped by hand in two
places.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aiecg.ecg import MODEL_LEADS
from aiecg.errors import ConfigError

DEFAULT_DEVICE = "auto"
"""The device ``aiecg train`` and ``train.py`` use unless told otherwise: CUDA when available, else the CPU."""


DEFAULT_TRANSFORMS = ("crop_resize", "amplitude", "noise", "shift", "electrode", "mixup")
"""The registered augmentations (:mod:`aiecg.data.augment`) every :class:`AugmentConfig` lists, in the order they
apply; their classes' defaults turn electrode and mixup off and the others on with probability 0.5."""

_FLAT_AUGMENT_KEYS = {  # the flat fields of AugmentConfig before transforms registered (configs saved then)
    "crop_resize": ("crop_resize", "min_fraction"), "crop_resize_p": ("crop_resize", "probability"),
    "amplitude": ("amplitude", ("low", "high")), "amplitude_p": ("amplitude", "probability"),
    "noise_mv": ("noise", "sd_mv"), "noise_p": ("noise", "probability"),
    "max_shift": ("shift", "max_shift"), "shift_p": ("shift", "probability"),
    "mixup_alpha": ("mixup", "alpha"), "mixup_p": ("mixup", "probability"),
}


@dataclass(frozen=True)
class AugmentConfig:
    """Seeded augmentation of training batches: registered transforms (:mod:`aiecg.data.augment`), applied in
    order, each to a sample with its own probability (``probability: 0`` turns one off).

    Attributes:
        transforms: transform name -> options that override its class's defaults (``{noise: {sd_mv: 0.03}}``);
            merged over :data:`DEFAULT_TRANSFORMS`, so naming one changes only what is named. On the command line:
            ``--augment-transforms noise='{sd_mv: 0.03}'``.
    """

    transforms: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        merged: dict[str, dict[str, Any]] = {name: {} for name in DEFAULT_TRANSFORMS}
        for name, options in self.transforms.items():
            if not isinstance(options, dict):
                raise ConfigError(f"augment.transforms.{name}: expected a mapping of the transform's options "
                                  f"(e.g. {{probability: 0.5}}), got {options!r}")
            merged[name] = {**merged.get(name, {}), **options}
        object.__setattr__(self, "transforms", merged)

    @staticmethod
    def migrate(data: dict[str, Any], where: str) -> dict[str, Any]:
        """A configuration saved with the former flat fields (``noise_mv``, ``noise_p``, ...) as ``transforms``."""
        flat = [key for key in data if key in _FLAT_AUGMENT_KEYS]
        if not flat:
            return data
        transforms: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (data.get("transforms") or {}).items()}
        for key in flat:
            name, option = _FLAT_AUGMENT_KEYS[key]
            value = data[key]
            if isinstance(option, tuple):  # amplitude: (low, high)
                if not isinstance(value, (list, tuple)) or len(value) != 2:
                    raise ConfigError(f"{where}.{key}: expected [low, high], got {value!r}")
                transforms.setdefault(name, {}).update(dict(zip(option, value)))
            else:
                transforms.setdefault(name, {})[option] = value
        return {**{k: v for k, v in data.items() if k not in flat}, "transforms": transforms}


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings; the defaults are the reference's (Adam 5e-4, batch 32, up to 200 epochs,
    learning rate x0.1 after 10 epochs without improvement, early stop after 20).

    Attributes:
        lr: initial learning rate.
        weight_decay: L2 weight decay.
        batch_size: samples per batch.
        max_epochs: most epochs to train.
        lr_patience: epochs without validation improvement before the learning rate drops.
        lr_factor: factor of that drop.
        early_stopping: epochs without validation improvement before training stops.
        seed: training seed (initialisation, shuffling, augmentation, dropout).
        device: 'auto' (CUDA when available), 'cpu' or 'cuda'; mixed precision (bfloat16) on CUDA.
        threads: CPU threads of this run (None: the CPU budget from the affinity mask, the cgroup quota,
            SLURM_CPUS_PER_TASK or AIECG_THREADS, divided between torchrun's ranks on a node); the run's
            config.yaml records the value used.
        sampling: 'none', 'oversample' or 'undersample' (categorical targets only).
        augment: augmentation of training batches, or None.
        freeze_batchnorm: keep batch-norm running statistics fixed (fine-tuning).
        optimizer: 'adam' or 'sgd' (with ``momentum``), the two optimisers of the reference's search space.
        momentum: SGD momentum.
    """

    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 200
    lr_patience: int = 10
    lr_factor: float = 0.1
    early_stopping: int = 20
    seed: int = 0
    device: str = DEFAULT_DEVICE
    threads: int | None = None
    sampling: str = "none"
    augment: AugmentConfig | None = None
    freeze_batchnorm: bool = False
    optimizer: str = "adam"
    momentum: float = 0.9


@dataclass(frozen=True)
class FinetuneConfig:
    """Staged unfreezing on an external cohort (the reference's ``--ext_tune``).

    Attributes:
        head_lr: learning rate of the head.
        head_weight_decay: weight decay of the head.
        block_lr: learning rate of the block nearest the output.
        block_weight_decay: weight decay of the blocks.
        depth_decay: learning-rate factor per block further from the output.
        stages: stages to run (None: the head, then every block).
        max_epochs_per_stage: most epochs per stage.
        early_stopping: epochs without validation improvement before a stage stops.
    """

    head_lr: float = 5e-5
    head_weight_decay: float = 1e-4
    block_lr: float = 1e-4
    block_weight_decay: float = 1e-5
    depth_decay: float = 0.5
    stages: int | None = None
    max_epochs_per_stage: int = 50
    early_stopping: int = 10


def default_store(cohort: str | Path) -> Path:
    """Where a cohort's prepared store lives unless told otherwise: ``store/`` beside its YAML."""
    return Path(cohort).parent / "store"


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the config is plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    """A dataclass of type ``cls`` from a (nested) dict, with a clear error for unknown keys or wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    migrate = getattr(cls, "migrate", None)  # a configuration saved in a former layout
    if migrate is not None:
        data = migrate(data, where)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, f"{where}.{name}")
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(inner, v, where) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and value != int(value)):
            raise ConfigError(f"{where}: expected a number ({hint.__name__}), got {value!r}")
        return hint(value)
    if hint is str:
        return str(value)
    return value


class SavedConfig:
    """What a run's configuration can do: save itself as YAML beside the run, load back with checked keys and
    types, and name its cohort's store."""

    _WHERE = "config"
    cohort: str
    store: str | None

    def store_path(self) -> Path:
        return Path(self.store) if self.store else default_store(self.cohort)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def save(self, path: str | Path) -> None:
        from aiecg.files import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None) -> Any:
        return _build(cls, data, where or cls._WHERE)

    @classmethod
    def load(cls, path: str | Path) -> Any:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{cls._WHERE} {path}: cannot read it ({exc})") from None
        return cls.from_dict(data or {}, str(path))


@dataclass
class RunConfig(SavedConfig):
    """One training (or evaluation) run.

    Attributes:
        cohort: the cohort YAML.
        store: the prepared store of that cohort's ECGs (default: ``store/`` beside the cohort YAML).
        target: a target name (``INDEXED_MASS``, ``LVH``, ...).
        arch: a registered model name.
        model_kwargs: extra constructor arguments of the model (KEY=VALUE).
        excl_meta: train on the ECG alone, without clinical variables.
        leads: the leads the model reads, in order.
        input: what the model reads: ``median`` (the median beat), ``rhythm`` (the 10 s strip; needs a store
            prepared with ``--strips``) or ``both`` (fused; ``--arch dual``); ``--arch`` must be registered for it.
        split_seed: seed of the participant split (the reference splits 70/15/15).
        split_fractions: train, validation, test shares.
        fit: optimisation settings.
        out: the directory that holds runs.
        name: the run's name (the reference's ``--save``); the run directory is ``out/name``.
        criterion: a loss name (``logcosh``, ``huber``, ``tail``, ``bce``, ``ce``); None: the target's default.
        loss_weighting: weight the rare class (BCE ``pos_weight`` = negatives / positives; inverse class
            frequency for cross-entropy).
        augment: seeded augmentation of training batches with the default settings (or those under fit.augment).
        beat_expansion: add every clean beat of LVH participants in the training split as extra samples
            (needs a store prepared with beats).
        resume: continue the run from its last checkpoint.
        recalib: fit a linear recalibration of the predicted value on (sex, prediction) on the validation split.
        target_prevalence: the LVH prevalence that prior-shift adjusted probabilities, PPV and NPV describe
            (default: the training split's, which is the enriched prevalence in an enriched cohort).
        compare: evaluate the ML baselines and classic criteria on the same test participants.
        cornell_female_mv: female adjustment of the Cornell product in mV (0.6 as in LIFE, the default; 0.8 as
            in Molloy et al. 1992).
        init: a pre-trained encoder bundle (``aiecg pretrain``) whose ECG feature blocks start the model; its input
            contract must be the store's and its architecture the run's; the bundle records where it came from.
        freeze_encoder: with ``init``, train the head only (a linear probe of the pre-trained ECG features).
        staged_unfreezing: with ``init``, fine-tune by gradual unfreezing (Howard & Ruder, ACL 2018), as ``aiecg
            finetune`` does for external cohorts: the head alone first, then one block more per stage from the
            output down, each stage to early stopping from the best weights of the one before; the head at ``--lr``,
            the last block at a tenth of it and each deeper block at half the one above; batch-norm statistics
            stay as pre-trained. The stages' curves are ``stage*/epochs.csv``.
        include_paced: keep participants whose ECG is paced (``aiecg prepare`` flags pacing spikes); by default
            they are excluded, each with the reason in ``exclusions.csv``: a paced QRS says little about LV mass.
    """

    cohort: str = ""
    store: str | None = None
    target: str = "INDEXED_MASS"
    arch: str = "fcn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    excl_meta: bool = False
    leads: tuple[str, ...] = MODEL_LEADS
    input: str = "median"
    split_seed: int = 42
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    fit: FitConfig = field(default_factory=FitConfig)
    out: str = "runs"
    name: str = "run"
    criterion: str | None = None
    loss_weighting: bool = False
    augment: bool = False
    beat_expansion: bool = False
    resume: bool = False
    recalib: bool = False
    target_prevalence: float | None = None
    compare: bool = True
    cornell_female_mv: float = 0.6
    init: str | None = None
    freeze_encoder: bool = False
    staged_unfreezing: bool = False
    include_paced: bool = False

    def criteria_options(self) -> dict[str, dict[str, Any]]:
        return {"cornell_product": {"female_adjustment_mv": self.cornell_female_mv}}

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    _WHERE = "run config"

    def override(self, **changes: Any) -> RunConfig:
        """A copy with the given fields changed; ``fit__lr=...`` changes a fit field. ``None`` values are ignored."""
        fit_changes = {k[5:]: v for k, v in changes.items() if k.startswith("fit__") and v is not None}
        top = {k: v for k, v in changes.items() if not k.startswith("fit__") and v is not None}
        return dataclasses.replace(self, fit=dataclasses.replace(self.fit, **fit_changes), **top)


@dataclass
class FinetuneRunConfig(SavedConfig):
    """One fine-tuning run of a saved model on an external cohort.

    Attributes:
        bundle: the saved model bundle (.aiecg) to fine-tune.
        cohort: the external cohort YAML.
        store: its prepared store (default: ``store/`` beside the cohort YAML).
        out: the run directory.
        finetune: the staged-unfreezing schedule.
        seed: training seed.
        device: 'auto' (CUDA when available), 'cpu' or 'cuda'.
        threads: CPU threads (None: the CPU budget, as for training); config.yaml records the value used.
        batch_size: samples per batch.
        split_seed: seed of the external cohort's participant split.
        split_fractions: its train, validation, test shares.
        criterion: a loss name; None: the target's default.
        target_prevalence: the LVH prevalence prior-shift adjusted probabilities, PPV and NPV describe (default:
            the external training split's).
    """

    bundle: str = ""
    cohort: str = ""
    store: str | None = None
    out: str = ""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = 0
    device: str = DEFAULT_DEVICE
    threads: int | None = None
    batch_size: int = 32
    split_seed: int = 42
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    criterion: str | None = None
    target_prevalence: float | None = None

    _WHERE = "fine-tuning config"


@dataclass
class PretrainConfig(SavedConfig):
    """Self-supervised pre-training of an ECG encoder (``aiecg pretrain``) by masked reconstruction.

    Attributes:
        stores: prepared stores whose usable records are the unlabelled data (the same pre-processing in all).
        out: the run directory (config.yaml, epochs.csv, checkpoint.pt, encoder.aiecg, pretrain.json).
        arch: a registered model name; its ECG feature blocks are the encoder.
        model_kwargs: extra constructor arguments of the model (KEY=VALUE).
        input: what the encoder reads: ``median`` (the median beat) or ``rhythm`` (the 10 s rhythm strips of stores
            prepared with ``--strips``; an encoder for ``aiecg train --input rhythm --init``).
        leads: the leads the encoder reads, in order.
        patch_ms: length of the masked time patches in milliseconds (one patch of one lead is one unit).
        mask_ratio: share of the (lead, patch) units hidden from the encoder.
        val_fraction: share of the records held out to decide early stopping.
        split_seed: seed of that hold-out split.
        exclude_ids: a text file of record ids (one per line) kept out of pre-training, e.g. a downstream run's
            ``test_ids.txt``, so that no test ECG is seen before testing.
        augment: augment the training batches (gain, noise, time shift, crop-resize; the training defaults).
        include_paced: keep records that ``aiecg prepare`` flagged as paced (excluded by default, as in training;
            ``pretrain.json`` counts them).
        resume: continue from the run's last checkpoint.
        fit: optimisation settings (seed, device, threads, epochs, early stopping, ...).
    """

    stores: tuple[str, ...] = ()
    out: str = "runs/pretrain"
    arch: str = "fcn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    input: str = "median"
    leads: tuple[str, ...] = MODEL_LEADS
    patch_ms: float = 50.0
    mask_ratio: float = 0.5
    val_fraction: float = 0.1
    split_seed: int = 42
    exclude_ids: str | None = None
    augment: bool = True
    include_paced: bool = False
    resume: bool = False
    fit: FitConfig = field(default_factory=lambda: FitConfig(max_epochs=100, early_stopping=10, lr_patience=5))

    _WHERE = "pre-training config"
