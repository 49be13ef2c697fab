"""``aiecg prepare``: ECG files -> the prepared store, in parallel, resumable and shardable.

Records are processed in fixed chunks (parts) in id order. Each part is written atomically by the worker
that computed it, so a run killed at any moment restarts where it stopped and recomputes nothing that
finished. ``shard=(k, n)`` processes only the parts with ``part % n == k - 1``, for cluster job arrays; the
merge step concatenates all parts into the store once every part exists.
"""

from __future__ import annotations

import io
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aiecg import __version__
from aiecg.data.cohort import ecg_records
from aiecg.data.store import (
    BEATS,
    ERRORS,
    INDEX,
    MANIFEST,
    MEDIAN,
    STATUS_OK,
    StoreError,
    atomic_save_npy,
    atomic_write_bytes,
)
from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.errors import ECGReadError
from aiecg.io import read_ecg
from aiecg.signal.beats import BeatConfig, BeatSet
from aiecg.signal.filters import FilterConfig
from aiecg.signal.record import RecordAnalysis, analyse_signal

PARTS = "parts"


@dataclass(frozen=True)
class PrepareConfig:
    """How records become store rows.

    Attributes:
        filters: baseline/band-pass, notch and resampling of the raw strip.
        beats: beat window, R-peak offset and beat QC.
        store_beats: keep every clean individual beat (for beat expansion); costs ~10x the disk of medians.
        chunk_size: records per part (the unit of resumption and sharding).
    """

    filters: FilterConfig = field(default_factory=FilterConfig)
    beats: BeatConfig = field(default_factory=BeatConfig)
    store_beats: bool = True
    chunk_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        return {"filters": asdict(self.filters), "beats": asdict(self.beats), "store_beats": self.store_beats,
                "chunk_size": self.chunk_size}


def analyse_record(ecg: ECG, config: PrepareConfig) -> BeatSet:
    """The 12 standard leads of one record -> its beats, median beat and QC verdict.

    The same per-record path as ``aiecg measure`` (``aiecg.signal.record.analyse_signal``): lead QC, clipping
    on the raw strip, plausibility of the measurements; see ``analyse_record_full`` for the measurements.

    Raises:
        ECGReadError: leads are missing and cannot be derived from I and II.
    """
    return analyse_record_full(ecg, config).beats


def analyse_record_full(ecg: ECG, config: PrepareConfig) -> RecordAnalysis:
    """``analyse_record`` with the measurements, global fiducials and per-beat table."""
    try:
        return analyse_signal(ecg.signal, ecg.fs, ecg.leads, config.filters, config.beats)
    except KeyError as exc:
        raise ECGReadError(ecg.source or ecg.record_id, str(exc.args[0])) from None


def process_record(record_id: str, path: str, fmt: str | None, config: PrepareConfig,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read, pre-process and summarise one ECG; never raises for a bad file (the reason is returned).

    ``fmt`` and ``options`` come from the cohort YAML (``ecg: {format: ..., options: {...}}``). Records that
    fail QC keep their measurements where a median beat exists (the status says they are not to be used);
    ``qc_notes`` holds warnings that do not fail the record (a bad lead outside the model inputs, Einthoven).
    """
    window = config.beats.window
    result: dict[str, Any] = {"id": record_id, "file": path, "status": STATUS_OK, "reason": "",
                              "median": np.zeros((len(STANDARD_LEADS), window), np.float32),
                              "beats": np.zeros((0, len(STANDARD_LEADS), window), np.float32)}
    try:
        if not path:
            raise ECGReadError(record_id, "the cohort table names no ECG file for this participant")
        ecg = read_ecg(path, format=fmt, **(options or {}))
        analysis = analyse_record_full(ecg, config)
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
                  qc_notes="; ".join(beats.qc_notes), bad_leads=" ".join(beats.bad_leads))
    if not beats.qc_ok:
        result.update(status="qc_fail", reason=beats.qc_reason)
    result.update(analysis.measurements)
    return result


def _part_path(root: Path, part: int) -> Path:
    return root / PARTS / f"part-{part:06d}.npz"


def _process_part(root: Path, part: int, records: pd.DataFrame, config: PrepareConfig) -> dict[str, int]:
    results = [process_record(r.id, r.ecg_path, r.format, config, r.options) for r in records.itertuples()]
    rows = [{k: v for k, v in r.items() if k not in ("median", "beats")} for r in results]
    counts = np.asarray([len(r["beats"]) for r in results], dtype=np.int64)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        median=np.stack([r["median"] for r in results]),
        beats=np.concatenate([r["beats"] for r in results]),
        beat_count=counts,
        index=np.frombuffer(json.dumps(rows, default=float).encode(), dtype=np.uint8),
    )
    atomic_write_bytes(_part_path(root, part), buffer.getvalue())
    return pd.Series([r["status"] for r in rows]).value_counts().to_dict()


def _run_part(args: tuple[Path, int, pd.DataFrame, PrepareConfig]) -> dict[str, int]:
    return _process_part(*args)


def _write_manifest(root: Path, cohort: Path, config: PrepareConfig, n_records: int) -> None:
    manifest = {
        "format": "aiecg-store", "format_version": 1, "cohort": str(cohort), "n_records": n_records,
        "leads": list(STANDARD_LEADS), "fs": config.filters.target_fs, "window": config.beats.window,
        "r_offset": config.beats.r_offset, "preprocessing": config.to_dict(),
        "versions": {"aiecg": __version__, "numpy": np.__version__, "python": platform.python_version()},
    }
    existing = root / MANIFEST
    if existing.exists():
        old = json.loads(existing.read_text())
        if old.get("preprocessing") != manifest["preprocessing"] or old.get("n_records") != n_records:
            raise StoreError(f"{root} was started with other settings or another cohort; "
                             "use a new --out directory or delete this one")
        return
    atomic_write_bytes(existing, json.dumps(manifest, indent=2).encode())


def prepare_store(
    cohort: str | Path,
    out: str | Path,
    config: PrepareConfig | None = None,
    workers: int = 1,
    shard: tuple[int, int] = (1, 1),
    merge: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Prepare every ECG of a cohort into a store at ``out``.

    Args:
        cohort: the cohort YAML (its table names the ECG files).
        out: the store directory; an existing one is resumed.
        config: pre-processing settings.
        workers: processes in the pool (1 runs in this process).
        shard: (k, n) to process only the k-th of n shards (1-based).
        merge: merge the parts into the store when every part exists.
        progress: show a progress bar.

    Returns:
        A summary: records per status, parts done, and whether the store was merged.
    """
    config = config or PrepareConfig()
    root = Path(out)
    (root / PARTS).mkdir(parents=True, exist_ok=True)
    for leftover in (root / PARTS).glob(".*.tmp"):  # a part that a killed run was writing
        leftover.unlink(missing_ok=True)
    records = ecg_records(cohort).sort_values("id", kind="stable").reset_index(drop=True)
    _write_manifest(root, Path(cohort).resolve(), config, len(records))
    k, n = shard
    if not (1 <= k <= n):
        raise ValueError(f"shard must be K/N with 1 <= K <= N, got {k}/{n}")
    n_parts = max(1, -(-len(records) // config.chunk_size))
    todo = [p for p in range(n_parts) if p % n == k - 1 and not _part_path(root, p).exists()]
    tasks = [(root, p, records.iloc[p * config.chunk_size : (p + 1) * config.chunk_size], config) for p in todo]
    started = time.perf_counter()
    bar = tqdm(total=sum(len(t[2]) for t in tasks), desc="prepare", unit="ECG", disable=not progress)
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for task, _ in zip(tasks, pool.map(_run_part, tasks)):
                bar.update(len(task[2]))
    else:
        for task in tasks:
            _run_part(task)
            bar.update(len(task[2]))
    bar.close()
    elapsed = time.perf_counter() - started
    done = all(_part_path(root, p).exists() for p in range(n_parts))
    summary: dict[str, Any] = {
        "records": len(records), "parts": n_parts, "processed_now": sum(len(t[2]) for t in tasks),
        "seconds": elapsed, "complete": done, "merged": False,
    }
    if done and merge:
        summary.update(merge_parts(root, n_parts), merged=True)
    return summary


def merge_parts(root: str | Path, n_parts: int | None = None) -> dict[str, Any]:
    """Concatenate all parts into ``median.npy``, ``beats.npy``, ``index.parquet`` and ``errors.csv``."""
    root = Path(root)
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
    errors = index.loc[index["status"] != STATUS_OK, ["id", "file", "status", "reason"]]
    atomic_write_bytes(root / ERRORS, errors.to_csv(index=False).encode())
    buffer = io.BytesIO()
    index.to_parquet(buffer, index=False)
    atomic_write_bytes(root / INDEX, buffer.getvalue())
    return {"status_counts": index["status"].value_counts().to_dict()}
