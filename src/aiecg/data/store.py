"""The prepared array store: what ``aiecg prepare`` writes and training reads.

Layout of a store directory::

    manifest.json    leads, fs, window, R-peak offset, pre-processing parameters, versions, record count
    index.parquet    one row per record: id, file, status ('ok' | 'qc_fail' | 'read_error'), reason,
                     heart rate, beat counts, the row of its beats, and the measurements of its median beat
    median.npy       float32 [records, leads, window] median beats in millivolts (memory-mapped on read)
    beats.npy        float32 [beats, leads, window] clean individual beats (optional)
    strips.npy       float32 [records, 12 leads, samples] filtered rhythm strips (optional, ``prepare --strips``;
                     the manifest's ``strips`` gives their rate, duration, samples and lead order)
    errors.csv       record, file, reason for every record that was not usable
    parts/           the chunks a (possibly sharded, possibly interrupted) prepare run wrote; merged at the end
    .lock            held (``flock``) by the run writing the store: one writer per store; sharded runs share it
                     and each holds ``parts/.lock-shard-K-of-N`` alone

Statuses: ``ok``, ``qc_fail``, ``read_error``, ``processing_error``, ``short_recording`` (too short for the
store's rhythm strips), and for a record whose worker failed:
``crashed`` (the worker process died, e.g. a segfault in a library), ``timed_out``, ``out_of_memory``.

Training never parses ECG files; it reads arrays from here.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiecg.errors import AiecgError
from aiecg.files import (  # noqa: F401 (re-exported)
    atomic_write,
    atomic_write_bytes,
    remove_temp_files,
    write_problem,
)

MANIFEST, INDEX, MEDIAN, BEATS, ERRORS = "manifest.json", "index.parquet", "median.npy", "beats.npy", "errors.csv"
STRIPS = "strips.npy"
STATUS_OK = "ok"
LOCK = ".lock"


class StoreError(AiecgError):
    """A store is missing, incomplete, cannot be written, or does not match what a model needs."""


class StoreBusyError(StoreError):
    """Another process is writing the store."""


@contextmanager
def writing(root: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing the store at ``root`` into one clear :class:`StoreError`."""
    try:
        yield
    except OSError as exc:
        raise StoreError(f"cannot write the store {root}: {write_problem(exc)}; free space, or pass a writable "
                         "--out") from None


class StoreLock:
    """An advisory ``flock`` on a lock file: one writer per store (or per shard of a store).

    The holder writes its pid, host and start time into the file, so a refused run can name it; it empties the
    file on release. The kernel releases the lock when the holder dies, however it dies.
    """

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what
        self.fd: int | None = None

    def acquire(self, shared: bool = False) -> StoreLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusyError(f"{self.what} is being written by another aiecg prepare ({self.holder()}); "
                                 "wait for it to finish or stop it, then run again") from None
        self.fd = fd
        os.ftruncate(fd, 0)  # a signature left here is a dead holder's: no live one can hold it beside us
        if not shared:
            os.pwrite(fd, json.dumps(lock_info()).encode(), 0)
        return self

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "a sharded run, or one that has not yet signed the lock file"
        return f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the sole holder unsigns the file
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def lock_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds")}


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.save(handle, array)


def atomic_save_npy_chunks(path: Path, chunks: Iterable[np.ndarray], shape: tuple[int, ...], dtype: Any) -> None:
    """Write a ``.npy`` file of ``shape`` from row chunks in order (one in memory at a time), atomically."""
    dtype = np.dtype(dtype)
    written = 0
    with atomic_write(path, "wb") as handle:
        np.lib.format.write_array_header_2_0(handle, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                      "fortran_order": False, "shape": tuple(shape)})
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            if chunk.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"{path.name}: a chunk of shape {chunk.shape} does not fit {shape}")
            handle.write(chunk.tobytes())
            written += len(chunk)
        if written != shape[0]:
            raise ValueError(f"{path.name}: {written} rows written, {shape[0]} expected")


def release_pages(array: np.ndarray) -> None:
    """Drop a read-only memory map's pages from this process's resident set (they stay in the page cache).

    Reading rows spread over a large memory-mapped file would otherwise leave the whole file counted in the
    process's resident memory.
    """
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)


def gather(array: np.ndarray, rows: Sequence[int], lead_rows: Sequence[int], chunk: int = 2048) -> np.ndarray:
    """``array[rows][:, lead_rows]`` for a memory-mapped [records, leads, window] array, read in file order in
    chunks of ``chunk`` records whose pages are released after each chunk, so memory stays near the size of the
    result."""
    rows = np.asarray(rows)
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), len(lead_rows), array.shape[2]), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        positions = order[start : start + chunk]
        out[positions] = array[rows[positions]][:, lead_rows]
        release_pages(array)
    return out


def join_inputs(kind: str, median: np.ndarray | None, strip: np.ndarray | None) -> np.ndarray:
    """THE model input of ``kind`` from median beats and rhythm strips (records first, or one record):
    ``both`` joins them along time, the median beat first."""
    if kind == "median":
        return median  # type: ignore[return-value]
    if kind == "rhythm":
        return strip  # type: ignore[return-value]
    return np.concatenate([median, strip], axis=-1)  # type: ignore[list-item]


@dataclass
class Store:
    """A prepared store opened for reading (arrays memory-mapped)."""

    root: Path
    manifest: dict[str, Any]
    index: pd.DataFrame
    median: np.ndarray
    beats: np.ndarray | None
    strips: np.ndarray | None = None

    @classmethod
    def open(cls, root: str | Path) -> Store:
        root = Path(root)
        if not (root / MANIFEST).exists() or not (root / INDEX).exists() or not (root / MEDIAN).exists():
            raise StoreError(f"{root} is not a complete aiecg store (run `aiecg prepare`, or finish it with "
                             "`aiecg prepare --merge-only` after sharded runs)")
        manifest = json.loads((root / MANIFEST).read_text())
        index = pd.read_parquet(root / INDEX)
        index["id"] = index["id"].astype(str)
        median = np.load(root / MEDIAN, mmap_mode="r")
        beats = np.load(root / BEATS, mmap_mode="r") if (root / BEATS).exists() else None
        if median.shape[0] != len(index):
            raise StoreError(f"{root}: median.npy holds {median.shape[0]} records but the index {len(index)}")
        strips = None
        if "strips" in manifest:
            if not (root / STRIPS).exists():
                raise StoreError(f"{root}: the manifest records rhythm strips but {STRIPS} is missing; prepare the "
                                 "cohort again into a new --out")
            strips = np.load(root / STRIPS, mmap_mode="r")
            if strips.shape[0] != len(index):
                raise StoreError(f"{root}: {STRIPS} holds {strips.shape[0]} records but the index {len(index)}")
        return cls(root=root, manifest=manifest, index=index, median=median, beats=beats, strips=strips)

    @property
    def leads(self) -> tuple[str, ...]:
        return tuple(self.manifest["leads"])

    @property
    def usable_ids(self) -> set[str]:
        return set(self.index.loc[self.index["status"] == STATUS_OK, "id"])

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Store rows of ``ids``; every id must be present and usable."""
        position = pd.Series(np.arange(len(self.index)), index=self.index["id"].to_numpy())
        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in position.index]
        if missing:
            raise StoreError(f"{self.root}: {len(missing)} ids are not in the store, e.g. {missing[:5]}; "
                             "prepare the cohort's ECGs first")
        rows = position.loc[ids].to_numpy()
        bad = self.index["status"].to_numpy()[rows] != STATUS_OK
        if bad.any():
            examples = [ids[i] for i in np.flatnonzero(bad)[:5]]
            raise StoreError(f"{self.root}: ids {examples} failed quality control; exclude them first")
        return rows

    def lead_rows(self, leads: Sequence[str]) -> list[int]:
        missing = [lead for lead in leads if lead not in self.leads]
        if missing:
            raise StoreError(f"{self.root}: leads {missing} are not in the store (it has {self.leads})")
        return [self.leads.index(lead) for lead in leads]

    def medians(self, ids: Sequence[str], leads: Sequence[str]) -> np.ndarray:
        """Median beats of ``ids`` for ``leads``, loaded into memory: float32 [len(ids), len(leads), window]."""
        return gather(self.median, self.rows(ids), self.lead_rows(leads))

    @property
    def strip_spec(self) -> dict[str, Any] | None:
        """The manifest's description of the rhythm strips (rate, duration, samples, lead order), or None."""
        return self.manifest.get("strips")

    def strips_of(self, ids: Sequence[str], leads: Sequence[str]) -> np.ndarray:
        """Rhythm strips of ``ids`` for ``leads``, loaded into memory: float32 [len(ids), len(leads), samples].

        Raises:
            StoreError: the store keeps no strips (it was prepared without ``--strips``).
        """
        strips = self.require_strips()
        strip_leads = list(self.manifest["strips"]["leads"])
        missing = [lead for lead in leads if lead not in strip_leads]
        if missing:
            raise StoreError(f"{self.root}: leads {missing} are not in the store's strips (it has {strip_leads})")
        return gather(strips, self.rows(ids), [strip_leads.index(lead) for lead in leads])

    def require_strips(self) -> np.ndarray:
        """The memory-mapped strips; a store prepared without them is refused with the command that adds them."""
        if self.strips is None:
            cohort = self.manifest.get("cohort", "COHORT.yaml")
            raise StoreError(f"{self.root} holds no rhythm strips (it was prepared without --strips); prepare the "
                             f"cohort again with them, `aiecg prepare --cohort {cohort} --strips --out NEW_STORE`, "
                             "and pass --store NEW_STORE")
        return self.strips

    def model_input(self, ids: Sequence[str], leads: Sequence[str], kind: str) -> np.ndarray:
        """What a model of input ``kind`` (:data:`aiecg.contract.INPUTS`) reads for ``ids``: median beats, rhythm
        strips, or both joined in time (:func:`join_inputs`); float32 [len(ids), len(leads), samples]."""
        median = self.medians(ids, leads) if kind != "rhythm" else None
        strip = self.strips_of(ids, leads) if kind != "median" else None
        return join_inputs(kind, median, strip)

    def beats_of(self, record_id: str, leads: Sequence[str]) -> np.ndarray:
        """The clean individual beats of one record, float32 [n, len(leads), window]."""
        if self.beats is None:
            raise StoreError(f"{self.root} holds no individual beats; prepare with --beats")
        row = self.index.iloc[self.rows([record_id])[0]]
        start, count = int(row["beat_start"]), int(row["beat_count"])
        beats = np.array(self.beats[start : start + count][:, self.lead_rows(leads)], dtype=np.float32)
        release_pages(self.beats)
        return beats
