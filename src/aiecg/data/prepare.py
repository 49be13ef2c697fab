"""``aiecg prepare``: ECG files -> the prepared store, in parallel, resumable and shardable.

Records are processed in fixed chunks (parts) in id order. Every record runs in a supervised child process
(:mod:`aiecg.data.workers`, even with one worker), so a file that crashes its reader, hangs or exhausts memory
becomes one error row and the batch goes on. Each finished part is written atomically, so a run killed at any
moment restarts where it stopped and recomputes nothing that finished; its workers die with it. One run writes
a store at a time (a lock file names it); a resumed run first deletes the temporary files a killed one left.
``shard=(k, n)`` processes only the parts with ``part % n == k - 1``, for cluster job arrays (shards of one
store may run at once); the merge step concatenates all parts into the store once every part exists. A
finished store is left as it is.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import logging
import platform
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aiecg import __version__
from aiecg.contract import input_kind
from aiecg.csvfile import write_csv
from aiecg.data.cohort import ecg_records
from aiecg.data.store import (
    BEATS,
    ERRORS,
    INDEX,
    LOCK,
    MANIFEST,
    MEDIAN,
    STATUS_OK,
    STRIPS,
    StoreBusyError,
    StoreError,
    StoreLock,
    atomic_save_npy,
    atomic_save_npy_chunks,
    atomic_write_bytes,
    join_inputs,
    remove_temp_files,
    writing,
)
from aiecg.data.workers import (
    OK,
    OUT_OF_MEMORY,
    Limits,
    Outcome,
    caught_out_of_memory,
    failure_row,
    run_supervised,
)
from aiecg.ecg import ECG, STANDARD_LEADS, normalise_lead_name
from aiecg.errors import CohortError, ECGReadError, check_processed
from aiecg.io import read_ecg
from aiecg.signal.beats import BeatConfig
from aiecg.signal.filters import FilterConfig
from aiecg.signal.quality import QualityConfig
from aiecg.signal.record import RecordAnalysis, analyse_signal
from aiecg.signal.strip import StripConfig, StripTooShort, rhythm_strip

PARTS = "parts"
SHORT_RECORDING = "short_recording"
"""Status of a record too short for the store's rhythm strips (``aiecg prepare --strips``)."""
WARM_MODULES = ("neurokit2", "scipy.io")
"""Imported once in the parent before workers fork, so no worker (nor one restarted after a crash) pays for them."""
_PART_NAME = re.compile(r"^part-(\d+)\.npz$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """How records become store rows.

    Attributes:
        filters: baseline/band-pass, notch and resampling of the raw strip.
        beats: beat window, R-peak offset and beat QC.
        store_beats: keep every clean individual beat (for beat expansion); costs ~10x the disk of medians.
        chunk_size: records per part (the unit of resumption and sharding).
        strips: keep each record's filtered rhythm strip at this rate and duration (``--strips``); None: none.
            A store without strips records no ``strips`` key, so its manifest is what it was before strips existed.
    """

    filters: FilterConfig = field(default_factory=FilterConfig)
    beats: BeatConfig = field(default_factory=BeatConfig)
    store_beats: bool = True
    chunk_size: int = 64
    strips: StripConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"filters": asdict(self.filters), "beats": asdict(self.beats), "store_beats": self.store_beats,
                "chunk_size": self.chunk_size}
        if self.strips is not None:
            data["strips"] = asdict(self.strips)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrepareConfig:
        """The inverse of :meth:`to_dict` (a store manifest's or a bundle's ``preprocessing``)."""
        beats = dict(data.get("beats", {}))
        quality = QualityConfig(**beats.pop("quality", {}))
        strips = data.get("strips")
        return cls(filters=FilterConfig(**data.get("filters", {})), beats=BeatConfig(**beats, quality=quality),
                   store_beats=bool(data.get("store_beats", True)), chunk_size=int(data.get("chunk_size", 64)),
                   strips=StripConfig(**strips) if strips is not None else None)

    @classmethod
    def for_model(cls, input_spec: dict[str, Any]) -> PrepareConfig:
        """The pre-processing a bundle's input contract asks of a new recording: its store's settings, with the
        strips the model reads (none for a median-beat model, even one trained on a store that kept strips)."""
        config = cls.from_dict(input_spec["preprocessing"])
        strips = input_spec.get("strips") if input_kind(input_spec) != "median" else None
        return replace(config, strips=StripConfig(fs=strips["fs"], seconds=strips["seconds"]) if strips else None)

    def empty_row(self, record_id: str, path: str, status: str = STATUS_OK, reason: str = "") -> dict[str, Any]:
        """A store row with zero arrays: a zero median, no beats, a zero strip when the store keeps strips."""
        window = self.beats.window
        row: dict[str, Any] = {"id": record_id, "file": path, "status": status, "reason": reason,
                               "median": np.zeros((len(STANDARD_LEADS), window), np.float32),
                               "beats": np.zeros((0, len(STANDARD_LEADS), window), np.float32)}
        if self.strips is not None:
            row["strip"] = np.zeros((len(STANDARD_LEADS), self.strips.samples), np.float32)
        return row

    def analyse(self, ecg: ECG) -> RecordAnalysis:
        """One record with these settings -> its beats, median beat, QC verdict, measurements, global fiducials
        and per-beat table: the same per-record path as ``aiecg measure``
        (:func:`aiecg.signal.record.analyse_signal`: lead QC, clipping on the raw strip, plausibility of the
        measurements).

        Raises:
            ECGReadError: leads are missing and cannot be derived from I and II.
        """
        try:
            return analyse_signal(ecg.signal, ecg.fs, ecg.leads, self.filters, self.beats)
        except KeyError as exc:
            raise ECGReadError(ecg.source or ecg.record_id, str(exc.args[0])) from None


def prepare_record(record_id: str, path: str, fmt: str | None, config: PrepareConfig,
                   options: dict[str, Any] | None = None, ecg: ECG | None = None) -> dict[str, Any]:
    """Read, pre-process and summarise one ECG; never raises for a bad file (the reason is returned).

    ``fmt`` and ``options`` come from the cohort YAML (``ecg: {format: ..., options: {...}}``); ``ecg`` is the
    record when the caller has read it already (``aiecg predict`` checks it first), so it is not read twice.
    Records that fail QC keep their measurements where a median beat exists (the status says they are not to
    be used); ``qc_notes`` holds warnings that do not fail the record (a bad lead outside the model inputs, Einthoven).
    With ``config.strips``, the row's ``strip`` is the record's rhythm strip (:mod:`aiecg.signal.strip`); a
    recording too short for it becomes a ``short_recording`` row.
    """
    result = config.empty_row(record_id, path)
    try:
        if ecg is None:
            if not path:
                raise ECGReadError(record_id, "the cohort table names no ECG file for this participant")
            ecg = read_ecg(path, format=fmt, **(options or {}))
        analysis = config.analyse(ecg)
    except ECGReadError as exc:
        result.update(status="read_error", reason=str(exc.reason))
        return result
    except Exception as exc:  # a signal-processing failure on odd data must not stop the batch
        result.update(status="processing_error", reason=f"{type(exc).__name__}: {exc}")
        return result
    beats = analysis.beats
    result["median"] = beats.median.astype(np.float32)
    if config.store_beats and beats.qc_ok:
        result["beats"] = beats.beats.astype(np.float32)
    result.update(heart_rate=float(beats.heart_rate), n_beats=int(len(beats.r_peaks)), n_clean=int(beats.clean.sum()),
                  qc_notes="; ".join(beats.qc_notes), bad_leads=" ".join(beats.bad_leads), paced=beats.paced)
    if not beats.qc_ok:
        result.update(status="qc_fail", reason=beats.qc_reason)
    result.update(analysis.measurements)
    if config.strips is not None:
        try:
            result["strip"] = rhythm_strip(analysis.filtered, analysis.fs, config.strips)
        except StripTooShort as exc:
            if result["status"] == STATUS_OK:
                result.update(status=SHORT_RECORDING, reason=f"{exc}; prepare without --strips to use its median beat")
    return result


def model_input_of(result: dict[str, Any], input_spec: dict[str, Any]) -> np.ndarray:
    """A :func:`prepare_record` row (prepared with :meth:`PrepareConfig.for_model`) -> what the bundle of
    ``input_spec`` reads: its leads of the median beat, the strip or both (:func:`aiecg.data.store.join_inputs`)."""
    rows = [STANDARD_LEADS.index(normalise_lead_name(lead)) for lead in input_spec["leads"]]
    kind = input_kind(input_spec)
    median = np.asarray(result["median"], np.float32)[rows]
    strip = np.asarray(result["strip"], np.float32)[rows] if kind != "median" else None
    return join_inputs(kind, median, strip)


def _part_path(root: Path, part: int) -> Path:
    return root / PARTS / f"part-{part:06d}.npz"


def failed_record(record_id: str, path: str, status: str, reason: str, config: PrepareConfig) -> dict[str, Any]:
    """The store row of a record that produced nothing usable (empty beats, a zero median)."""
    return config.empty_row(record_id, path, status, reason)


def _record_row(record: Any, outcome: Outcome, config: PrepareConfig, limits: Limits) -> dict[str, Any]:
    """A worker's outcome for one record -> its store row (a failed worker is one error row)."""
    if outcome.kind == OK:
        result = outcome.value
        reason = str(result.get("reason", ""))
        if caught_out_of_memory(reason):  # the reader caught it (aiecg.io.registry)
            outcome = Outcome(OUT_OF_MEMORY)
        else:
            return result
    status, reason = failure_row(outcome, limits)
    return failed_record(record.id, record.ecg_path, status, reason, config)


def _write_part(root: Path, part: int, results: list[dict[str, Any]]) -> None:
    rows = [{k: v for k, v in r.items() if k not in ("median", "beats", "strip")} for r in results]
    counts = np.asarray([len(r["beats"]) for r in results], dtype=np.int64)
    strips = {"strip": np.stack([r["strip"] for r in results])} if "strip" in results[0] else {}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        median=np.stack([r["median"] for r in results]),
        beats=np.concatenate([r["beats"] for r in results]),
        beat_count=counts,
        index=np.frombuffer(json.dumps(rows, default=float).encode(), dtype=np.uint8),
        **strips,
    )
    atomic_write_bytes(_part_path(root, part), buffer.getvalue())


def _process_parts(root: Path, parts: dict[int, pd.DataFrame], config: PrepareConfig, workers: int,
                   limits: Limits, close_fds: tuple[int, ...], progress: bool) -> None:
    """Run every record of ``parts`` in supervised workers; write each part as soon as its last record is in."""
    results: dict[int, list[dict[str, Any] | None]] = {p: [None] * len(frame) for p, frame in parts.items()}
    left = {p: len(frame) for p, frame in parts.items()}
    bar = tqdm(total=sum(left.values()), desc="prepare", unit="ECG", disable=not progress)

    def settle(part: int, position: int, row: dict[str, Any]) -> None:
        results[part][position] = row
        left[part] -= 1
        bar.update(1)
        if left[part] == 0:
            _write_part(root, part, results.pop(part))  # type: ignore[arg-type]

    tasks = []
    for part, frame in parts.items():
        for position, record in enumerate(frame.itertuples()):
            if record.problem:  # refused before reading (e.g. a path outside the ECG folder)
                settle(part, position, failed_record(record.id, record.ecg_path, "read_error", record.problem,
                                                     config))
            else:
                tasks.append(((part, position), (record.id, record.ecg_path, record.format, config, record.options)))
    if tasks:
        for module in WARM_MODULES:
            try:
                importlib.import_module(module)
            except ImportError:
                pass
    for (part, position), outcome in run_supervised(prepare_record, tasks, workers, limits, close_fds):
        settle(part, position, _record_row(parts[part].iloc[position], outcome, config, limits))
    bar.close()


def _records_digest(records: pd.DataFrame) -> str:
    text = "\n".join(f"{i}\t{p}" for i, p in zip(records["id"], records["ecg_path"]))
    return hashlib.sha256(text.encode()).hexdigest()


def _write_manifest(root: Path, cohort: Path, config: PrepareConfig, records: pd.DataFrame) -> None:
    manifest = {
        "format": "aiecg-store", "format_version": 1, "cohort": str(cohort), "n_records": len(records),
        "records_sha256": _records_digest(records),
        "leads": list(STANDARD_LEADS), "fs": config.filters.target_fs, "window": config.beats.window,
        "r_offset": config.beats.r_offset, "preprocessing": config.to_dict(),
        "versions": {"aiecg": __version__, "numpy": np.__version__, "python": platform.python_version()},
    }
    if config.strips is not None:
        manifest["strips"] = strip_spec(config.strips)
    existing = root / MANIFEST
    if existing.exists():
        try:
            old = json.loads(existing.read_text())
        except ValueError:
            raise StoreError(f"{existing} is not valid JSON; use a new --out directory or delete this one") from None
        same_records = old.get("records_sha256", manifest["records_sha256"]) == manifest["records_sha256"]
        if old.get("preprocessing") != manifest["preprocessing"] or old.get("n_records") != len(records) \
                or not same_records:
            raise StoreError(f"{root} was started with other settings or another cohort; "
                             "use a new --out directory or delete this one")
        return
    atomic_write_bytes(existing, json.dumps(manifest, indent=2).encode())


def strip_spec(strips: StripConfig) -> dict[str, Any]:
    """What a store's manifest says of its rhythm strips: file, rate, duration, samples, lead order, dtype."""
    return {"file": STRIPS, "fs": strips.fs, "seconds": strips.seconds, "samples": strips.samples,
            "leads": list(STANDARD_LEADS), "dtype": "float32"}


def _check_usable(root: Path, counts: dict[str, int]) -> None:
    check_processed(counts, (STATUS_OK,), "ECGs", str(root / ERRORS), StoreError)


def _own_part(shard: tuple[int, int]) -> Any:
    k, n = shard

    def owned(name: str) -> bool:
        match = _PART_NAME.match(name)
        return bool(match) and int(match.group(1)) % n == k - 1

    return owned


def prepare_store(
    cohort: str | Path,
    out: str | Path,
    config: PrepareConfig | None = None,
    workers: int = 1,
    shard: tuple[int, int] = (1, 1),
    merge: bool = True,
    progress: bool = True,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Prepare every ECG of a cohort into a store at ``out``.

    Args:
        cohort: the cohort YAML (its table names the ECG files).
        out: the store directory; an existing one is resumed, a finished one left as it is.
        config: pre-processing settings.
        workers: worker processes (each record runs in one, even with 1).
        shard: (k, n) to process only the k-th of n shards (1-based).
        merge: merge the parts into the store when every part exists.
        progress: show a progress bar.
        limits: time and memory a record may take in its worker.

    Returns:
        A summary: records per status, parts done, and whether the store was merged.

    Raises:
        StoreBusyError: another run is writing this store (or this shard).
        StoreError: the store cannot be written, belongs to other settings, or no record was usable.
        CohortError: the cohort YAML or table is not usable.
    """
    config = config or PrepareConfig()
    limits = limits or Limits()
    k, n = shard
    if not (1 <= k <= n):
        raise ValueError(f"shard must be K/N with 1 <= K <= N, got {k}/{n}")
    records = ecg_records(cohort).sort_values("id", kind="stable").reset_index(drop=True)
    if records.empty:
        raise CohortError(f"{cohort}: the cohort table has no rows, so there is nothing to prepare")
    root = Path(out)
    n_parts = max(1, -(-len(records) // config.chunk_size))
    locks: list[StoreLock] = []
    with writing(root):
        try:
            (root / PARTS).mkdir(parents=True, exist_ok=True)
            locks.append(StoreLock(root / LOCK, f"store {root}").acquire(shared=n > 1))
            if n > 1:
                locks.append(StoreLock(root / PARTS / f".lock-shard-{k}-of-{n}", f"shard {k}/{n} of store {root}")
                             .acquire())
                remove_temp_files(root / PARTS, _own_part(shard))
            else:
                remove_temp_files(root)
                remove_temp_files(root / PARTS)
            _write_manifest(root, Path(cohort).resolve(), config, records)
            summary: dict[str, Any] = {"records": len(records), "parts": n_parts, "processed_now": 0, "seconds": 0.0,
                                       "complete": True, "merged": True}
            if (root / INDEX).exists():
                counts = pd.read_parquet(root / INDEX, columns=["status"])["status"].value_counts().to_dict()
                _check_usable(root, counts)
                log.info("store %s is already complete (%d records); nothing to do", root, len(records))
                return {**summary, "status_counts": counts, "note": "already complete; nothing to do"}
            todo = [p for p in range(n_parts) if p % n == k - 1 and not _part_path(root, p).exists()]
            parts = {p: records.iloc[p * config.chunk_size : (p + 1) * config.chunk_size] for p in todo}
            started = time.perf_counter()
            _process_parts(root, parts, config, workers, limits, tuple(lock.fd for lock in locks), progress)
            summary.update(processed_now=sum(len(f) for f in parts.values()),
                           seconds=time.perf_counter() - started, merged=False)
            if n > 1:  # the last shard to finish merges: it needs the store to itself
                for lock in reversed(locks):
                    lock.release()
                locks.clear()
                try:
                    locks.append(StoreLock(root / LOCK, f"store {root}").acquire())
                except StoreBusyError:
                    summary.update(complete=False, note="other shards are still running; the last one merges")
                    return summary
                remove_temp_files(root)
                remove_temp_files(root / PARTS)
            summary["complete"] = all(_part_path(root, p).exists() for p in range(n_parts))
            if summary["complete"] and merge:
                summary.update(_merge(root, n_parts), merged=True)
                _check_usable(root, summary["status_counts"])
            return summary
        finally:
            for lock in reversed(locks):
                lock.release()


def merge_parts(root: str | Path, n_parts: int | None = None) -> dict[str, Any]:
    """Concatenate all parts into ``median.npy``, ``beats.npy``, ``strips.npy``, ``index.parquet`` and ``errors.csv``
    (holding the store's lock)."""
    root = Path(root)
    if not (root / MANIFEST).exists():
        raise StoreError(f"{root} holds no prepared parts (no {MANIFEST}); run `aiecg prepare` first")
    with writing(root):
        lock = StoreLock(root / LOCK, f"store {root}").acquire()
        try:
            remove_temp_files(root)
            remove_temp_files(root / PARTS)
            summary = _merge(root, n_parts)
            _check_usable(root, summary["status_counts"])
            return summary
        finally:
            lock.release()


def _merge(root: Path, n_parts: int | None = None) -> dict[str, Any]:
    manifest = json.loads((root / MANIFEST).read_text())
    if n_parts is None:
        n_parts = max(1, -(-manifest["n_records"] // manifest["preprocessing"]["chunk_size"]))
    missing = [p for p in range(n_parts) if not _part_path(root, p).exists()]
    if missing:
        raise StoreError(f"{root}: parts {missing[:10]} are missing; run the remaining shards first")
    medians, beats, rows, counts = [], [], [], []
    for part in range(n_parts):
        with np.load(_part_path(root, part)) as data:
            medians.append(data["median"])
            beats.append(data["beats"])
            counts.append(data["beat_count"])
            rows += json.loads(data["index"].tobytes().decode())
    index = pd.DataFrame(rows)
    count = np.concatenate(counts)
    index["beat_count"] = count
    index["beat_start"] = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    atomic_save_npy(root / MEDIAN, np.concatenate(medians))
    if manifest["preprocessing"]["store_beats"]:
        atomic_save_npy(root / BEATS, np.concatenate(beats))
    if "strips" in manifest:  # streamed part by part: a large cohort's strips need not fit in memory
        def strips() -> Iterator[np.ndarray]:
            for part in range(n_parts):
                with np.load(_part_path(root, part)) as data:
                    yield data["strip"]

        shape = (len(index), len(manifest["strips"]["leads"]), int(manifest["strips"]["samples"]))
        atomic_save_npy_chunks(root / STRIPS, strips(), shape, np.float32)
    errors = index.loc[index["status"] != STATUS_OK, ["id", "file", "status", "reason"]]
    write_csv(errors, root / ERRORS)
    buffer = io.BytesIO()
    index.to_parquet(buffer, index=False)
    atomic_write_bytes(root / INDEX, buffer.getvalue())  # last: its presence marks a finished store
    return {"status_counts": index["status"].value_counts().to_dict()}
