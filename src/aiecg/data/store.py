"""The prepared array store: what ``aiecg prepare`` writes and training reads.

Layout of a store directory::

    manifest.json    leads, fs, window, R-peak offset, pre-processing parameters, versions, record count
    index.parquet    one row per record: id, file, status ('ok' | 'qc_fail' | 'read_error'), reason,
                     heart rate, beat counts, the row of its beats, and the measurements of its median beat
    median.npy       float32 [records, leads, window] median beats in millivolts (memory-mapped on read)
    beats.npy        float32 [beats, leads, window] clean individual beats (optional)
    errors.csv       record, file, reason for every record that was not usable
    parts/           the chunks a (possibly sharded, possibly interrupted) prepare run wrote; merged at the end

Training never parses ECG files; it reads arrays from here.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiecg.errors import AiecgError
from aiecg.files import atomic_write, atomic_write_bytes  # noqa: F401 (re-exported)

MANIFEST, INDEX, MEDIAN, BEATS, ERRORS = "manifest.json", "index.parquet", "median.npy", "beats.npy", "errors.csv"
STATUS_OK = "ok"


class StoreError(AiecgError):
    """A store is missing, incomplete or does not match what a model needs."""


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.save(handle, array)


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


@dataclass
class Store:
    """A prepared store opened for reading (arrays memory-mapped)."""

    root: Path
    manifest: dict[str, Any]
    index: pd.DataFrame
    median: np.ndarray
    beats: np.ndarray | None

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
        return cls(root=root, manifest=manifest, index=index, median=median, beats=beats)

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

    def beats_of(self, record_id: str, leads: Sequence[str]) -> np.ndarray:
        """The clean individual beats of one record, float32 [n, len(leads), window]."""
        if self.beats is None:
            raise StoreError(f"{self.root} holds no individual beats; prepare with --beats")
        row = self.index.iloc[self.rows([record_id])[0]]
        start, count = int(row["beat_start"]), int(row["beat_count"])
        beats = np.array(self.beats[start : start + count][:, self.lead_rows(leads)], dtype=np.float32)
        release_pages(self.beats)
        return beats
