"""Hyperparameter search on Optuna (Akiba et al., KDD 2019): the search space, storage by URL, pruners and the
worker loop that lets many processes share one study.

The default space is the reference's (Naderi, Kaplan et al.; tuned there with Ray Tune's asynchronous successive
halving): optimiser, learning rate, batch size, FCN configuration, batch norm, max-pool, convolution and head
dropout, and for categorical targets oversampling and loss weighting. Trials are pruned by successive halving
(Jamieson & Talwalkar, AISTATS 2016) or Hyperband (Li et al., JMLR 2018) on the validation loss of each epoch.

Workers coordinate only through the storage: each one loops "reap stale trials, count finished ones, run one
more", so a worker killed mid-trial leaves a trial whose heartbeat stops; after the grace period any worker marks
it failed and re-queues its parameters, and the study still ends with the requested number of finished trials.
"""

from __future__ import annotations

import dataclasses
import fcntl
import inspect
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from aiecg.config import RunConfig
from aiecg.errors import AiecgError, ConfigError
from aiecg.files import atomic_write
from aiecg.models.fcn import FCN
from aiecg.train.loop import FitConfig

try:  # the optional 'hpo' extra
    import optuna
    from optuna.trial import TrialState
except ImportError:  # pragma: no cover - exercised only without the extra
    optuna = None

DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "optimizer": {"choices": ["adam", "sgd"]},
    "lr": {"choices": [1e-4, 1e-3, 1e-2]},
    "batch_size": {"choices": [16, 32, 64, 128]},
    "arch": {"choices": ["fcn", "fcn_zhou2024"]},  # the WANG2016 and ZHOU2024 FCN configurations
    "batch_norm": {"choices": [True, False]},
    "max_pool": {"choices": [True, False]},
    "conv_dropout": {"low": 0.0, "high": 0.8, "step": 0.1},
    "head_dropout": {"low": 0.0, "high": 0.8, "step": 0.1},
}
# settings that change the network's weights' shapes: a search that starts from a pre-trained encoder (--init)
# keeps the encoder's architecture, so its default space leaves them out
ARCHITECTURE_SETTINGS = ("arch", "batch_norm", "max_pool")
CATEGORICAL_SPACE: dict[str, dict[str, Any]] = {
    "sampling": {"choices": ["none", "oversample"]},
    "loss_weighting": {"choices": [False, True]},
}
PRUNERS = ("hyperband", "halving", "none")
FINISHED = ("COMPLETE", "PRUNED")
RANGE_KEYS = {"low", "high", "step", "log"}
_RUN_FIELDS = {"arch", "criterion", "loss_weighting", "augment"}  # not the data: splits, target, leads stay fixed
_FIT_FIELDS = {f.name for f in dataclasses.fields(FitConfig)} - {"seed", "device", "max_epochs", "augment"}
_MODEL_FIELDS = set(list(inspect.signature(FCN.__init__).parameters)[5:])


def require_optuna() -> None:
    if optuna is None:
        raise AiecgError("aiecg tune needs Optuna: pip install 'aiecg[hpo]'")


@dataclass(frozen=True)
class Param:
    """One searched setting: a categorical ``choices`` list, or a ``low``..``high`` range (``step``, ``log``)."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step or 1)):
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> tuple[Any, ...]:
        """The values that bound the setting: every choice, or the ends of the range (checked before a trial)."""
        return self.choices if self.choices is not None else (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        described: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            described["step"] = self.step
        if self.log:
            described["log"] = True
        return described


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as a string; take it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_space(space: dict[str, Any], source: str = "search space") -> list[Param]:
    """Check a space mapping (name -> {choices: [...]} or {low, high[, step][, log]}) and return its params."""
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{source}: expected a mapping of setting name -> {{choices: [...]}} or {{low, high}}")
    known = _RUN_FIELDS | _FIT_FIELDS | _MODEL_FIELDS
    params = []
    for name, spec in space.items():
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {name!r}; searchable: {', '.join(sorted(known))}")
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: {name}: expected {{choices: [...]}} or {{low: .., high: ..}}, got {spec!r}")
        if "choices" in spec:
            choices = tuple(_number(v) for v in spec["choices"] or ())
            if not choices:
                raise ConfigError(f"{source}: {name}: 'choices' is empty")
            params.append(Param(name, choices=choices))
            continue
        unknown = sorted(set(spec) - RANGE_KEYS)
        if unknown:
            raise ConfigError(f"{source}: {name}: unknown key(s) {unknown}; a range takes {sorted(RANGE_KEYS)}")
        try:
            low, high = _number(spec["low"]), _number(spec["high"])
        except KeyError:
            raise ConfigError(f"{source}: {name}: give 'choices' or both 'low' and 'high'") from None
        params.append(_range(source, name, low, high, _number(spec.get("step")), spec.get("log", False)))
    return params


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _range(source: str, name: str, low: Any, high: Any, step: Any, log: Any) -> Param:
    """A ``low``..``high`` range checked as Optuna would check it at the first trial, but before any trial."""
    where = f"{source}: {name}"
    if not (_is_number(low) and _is_number(high) and low <= high):
        raise ConfigError(f"{where}: need finite numbers low <= high, got {low!r}, {high!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: 'log' must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-scale range needs low > 0, got {low!r}; raise low or drop 'log'")
    if step is not None:
        if not _is_number(step) or step <= 0:
            raise ConfigError(f"{where}: 'step' must be a positive number, got {step!r}")
        if log:
            raise ConfigError(f"{where}: give 'step' or 'log', not both (Optuna samples a log range continuously)")
        if step > high - low and high > low:
            raise ConfigError(f"{where}: 'step' {step!r} is larger than the range {low!r}..{high!r}")
    return Param(name, low=low, high=high, step=step, log=log)


def load_space(path: str | Path | None, categorical: bool, keep_architecture: bool = False) -> list[Param]:
    """The YAML space at ``path``, or the reference's (with sampling and loss weighting for categorical targets;
    with ``keep_architecture``, as from a pre-trained encoder, without :data:`ARCHITECTURE_SETTINGS`)."""
    if path is None:
        space = {**DEFAULT_SPACE, **(CATEGORICAL_SPACE if categorical else {})}
        if keep_architecture:
            space = {name: spec for name, spec in space.items() if name not in ARCHITECTURE_SETTINGS}
        return parse_space(space, "default space" + (" for --init" if keep_architecture else ""))
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: search-space file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_space(data, str(path))


def clean(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as written: stepped floats rounded (Optuna's 0.30000000000000004 -> 0.3)."""
    return {k: round(v, 10) if isinstance(v, float) else v for k, v in params.items()}


def apply_params(config: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``config`` with a trial's parameters set: fit settings in ``fit``, model settings in ``model_kwargs``."""
    params = clean(params)
    fit = {k: v for k, v in params.items() if k in _FIT_FIELDS}
    model = {k: v for k, v in params.items() if k in _MODEL_FIELDS}
    top = {k: v for k, v in params.items() if k in _RUN_FIELDS}
    return dataclasses.replace(config, fit=dataclasses.replace(config.fit, **fit),
                               model_kwargs={**config.model_kwargs, **model}, **top)


@contextmanager
def _journal_guard(url: str) -> Iterator[None]:
    """A damaged journal file (a line that is not JSON; Optuna tolerates a bad last line until another follows)
    as one :class:`ConfigError`."""
    try:
        yield
    except ValueError as exc:  # json.JSONDecodeError, or Optuna's "Invalid log format."
        if not (isinstance(exc, json.JSONDecodeError) or str(exc) == "Invalid log format."):
            raise
        raise ConfigError(f"--storage {url!r}: the journal {url.removeprefix('journal://')} is damaged "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0]}); restore it from a copy, or start a "
                          "new study in another file") from None


def open_storage(url: str) -> Any:
    """A study storage from a URL: ``sqlite:///file.db`` or another SQLAlchemy URL (``postgresql://...``,
    ``mysql://...``) for Optuna's RDB storage; ``journal:///path/file.log`` (or a path ending ``.log`` /
    ``.journal``) for an append-only journal file, safe on a shared (NFS) file system."""
    require_optuna()
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    path = url[len("journal://"):] if url.startswith("journal://") else url
    if url.startswith("journal://") or url.endswith((".log", ".journal")):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with _journal_guard(url):
            storage = JournalStorage(JournalFileBackend(path))
            storage.get_all_studies()  # replays the journal now: a damaged one is refused here, in one line
        return storage
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    elif "://" not in url:
        raise ConfigError(f"--storage {url!r}: give sqlite:///file.db, journal:///file.log or a database URL")
    try:
        with sqlite_lock(url):  # creating the tables (alembic) is not safe for two workers at once
            return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite")
                              else None)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL
        raise ConfigError(f"--storage {url!r}: cannot open ({exc})") from None


@contextmanager
def sqlite_lock(url: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``FILE.db.lock`` beside a ``sqlite:///FILE.db`` storage (nothing for other
    URLs), so that workers starting together create the database and the study one at a time: two SQLite
    connections creating Optuna's tables at once race on alembic's version table. The kernel drops the lock when
    its holder dies."""
    if not url.startswith("sqlite:///"):
        yield
        return
    fd = os.open(f"{url[len('sqlite:///'):]}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def make_pruner(name: str, max_epochs: int) -> Any:
    """Hyperband (default) or successive halving over epochs 1..max_epochs, reduction factor 3; or none."""
    require_optuna()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner {name!r}: choose one of {', '.join(PRUNERS)}")


def open_study(storage_url: str, name: str, space: list[Param], pruner: str, max_epochs: int, seed: int,
               worker: int) -> Any:
    """Create or join the study; a worker whose space differs from the study's is refused.

    The sampler is seeded from ``seed`` and ``worker``, and, when the study already holds trials, from their
    number too: a worker restarted on its study draws new settings (the same seed would repeat its first trials).
    """
    require_optuna()
    sampler = optuna.samplers.TPESampler(seed=seed * 10_007 + worker, constant_liar=True)
    storage = open_storage(storage_url)
    with _journal_guard(storage_url), sqlite_lock(storage_url):
        study = optuna.create_study(storage=storage, study_name=name, direction="minimize", sampler=sampler,
                                    pruner=make_pruner(pruner, max_epochs), load_if_exists=True)
    earlier = len(study.get_trials(deepcopy=False))
    if earlier:  # a restarted (or late) worker continues the search instead of replaying its first draws
        study.sampler = optuna.samplers.TPESampler(seed=seed * 10_007 + worker + 1_000_003 * earlier,
                                                   constant_liar=True)
    described = {p.name: p.to_dict() for p in space}
    stored = study.user_attrs.get("space")
    if stored is None:
        study.set_user_attr("space", described)
    elif json.loads(json.dumps(stored)) != json.loads(json.dumps(described)):
        raise ConfigError(f"study {name!r} in {storage_url} searches another space ({stored}); use the same "
                          "--space for every worker, or another --study name")
    return study


class Heartbeat:
    """Stamps ``heartbeat`` (unix time) on a running trial every ``interval`` seconds from a daemon thread, so that
    other workers can tell a trial whose worker was killed from a slow one."""

    def __init__(self, trial: Any, interval: float):
        self.trial, self.interval, self._stop = trial, interval, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception:  # noqa: BLE001 - the trial may have finished meanwhile
                return

    def __enter__(self) -> Heartbeat:
        self.trial.set_user_attr("heartbeat", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def reap_stale(study: Any, grace: float) -> list[int]:
    """Mark RUNNING trials whose heartbeat is older than ``grace`` seconds as FAIL and re-queue their parameters;
    returns the numbers of the trials reaped here (another worker may reap the same one first)."""
    reaped = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get("heartbeat") or trial.datetime_start.timestamp()
        if now - beat <= grace:
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except Exception:  # noqa: BLE001 - already finished or reaped by another worker
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        reaped.append(trial.number)
    return reaped


def run_worker(study: Any, objective: Callable[[Any], float], n_trials: int, heartbeat: float = 30.0,
               worker: int = 0, log: Callable[[str], None] | None = None) -> int:
    """Run trials until the study holds ``n_trials`` finished (complete or pruned) trials; returns how many this
    worker ran. While the remaining trials are all running elsewhere, it waits, reaping stale ones."""
    require_optuna()
    grace = 4 * heartbeat

    def wrapped(trial: Any) -> float:
        trial.set_user_attr("worker", worker)
        with Heartbeat(trial, heartbeat):
            try:
                return objective(trial)
            except KeyboardInterrupt:  # Optuna marks the trial FAIL; its setting goes back to the queue at once
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
                raise

    ran = 0
    while True:
        reaped = reap_stale(study, grace)
        if reaped and log:
            log(f"re-queued stale trial(s) {reaped} (no heartbeat for {grace:.0f} s)")
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        finished, running = sum(s in FINISHED for s in states), states.count("RUNNING")
        if finished >= n_trials:
            return ran
        if states.count("FAIL") > max(n_trials, 10):
            raise AiecgError(f"study {study.study_name!r}: {states.count('FAIL')} trials failed; see the log")
        if finished + running >= n_trials:
            time.sleep(min(heartbeat, 2.0))
            continue
        study.optimize(wrapped, n_trials=1)
        ran += 1


def trial_table(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, value (best validation loss), best_epoch, epochs (reported),
    worker, retry_of, duration_s, datetime_start, datetime_complete, one ``param_<name>`` column per searched
    setting, and ``val_loss_curve`` (JSON list of the per-epoch validation losses)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        curve = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and \
            t.datetime_start else math.nan
        rows.append({
            "number": t.number, "state": t.state.name, "value": t.value if t.value is not None else math.nan,
            "best_epoch": t.user_attrs.get("best_epoch", math.nan), "epochs": len(curve),
            "worker": t.user_attrs.get("worker", math.nan), "retry_of": t.user_attrs.get("retry_of", math.nan),
            "duration_s": duration,
            "datetime_start": t.datetime_start.isoformat() if t.datetime_start else "",
            "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else "",
            **{f"param_{k}": v for k, v in clean(t.params).items()},
            "val_loss_curve": json.dumps([round(v, 6) for v in curve]),
        })
    return pd.DataFrame(rows)


def write_trials(study: Any, path: str | Path) -> pd.DataFrame:
    """Save :func:`trial_table` as CSV (atomically: several workers may write it)."""
    table = trial_table(study)
    with atomic_write(path, "w", newline="") as handle:
        table.to_csv(handle, index=False)
    return table


def param_importance(study: Any) -> dict[str, float]:
    """fANOVA importance of each parameter (Hutter et al., ICML 2014) over finished trials; {} when too few."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 2:
        return {}
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study, normalize=True).items()}
    except (RuntimeError, ValueError):  # e.g. every parameter took one value
        return {}
