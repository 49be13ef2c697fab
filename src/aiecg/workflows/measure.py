"""``aiecg measure``: ECG files -> ``measurements.csv`` (one row per file), ``beats.csv`` (one row per beat: global
P/QRS/T boundaries as IEC 60601-2-25 defines them, the earliest onset and latest offset over the leads) and
``leads.csv`` (``--per-lead``: one row per beat and lead, each lead's own onset, peak and offset of P, QRS and T).

Inputs are files, folders (searched recursively for files a reader handles; a WFDB record counts once, by its
``.hea`` header) or cohort YAML files (every ECG the cohort table names, with its format and reader options).
Every input file gets a row, unreadable ones too (``status`` read_error or processing_error and the reason);
``status`` is ``qc_fail`` where the record fails QC, with its measurements kept where a median beat exists, and
``paced`` where pacing spikes were found (measured too; the ``paced`` column names the chamber where it can be
told). A wide QRS (bundle-branch block) is a finding, not a failure.
The per-record path is ``aiecg.signal.record.analyse_signal``, the same as ``aiecg prepare``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from aiecg.csvfile import write_csv
from aiecg.data.workers import OK, Limits, failure_row, record_failure, run_supervised
from aiecg.ecg import STANDARD_LEADS
from aiecg.errors import ECGReadError, check_processed
from aiecg.files import check_output
from aiecg.inputs import InputError, InputRecord, expand_inputs
from aiecg.signal import criteria as criteria_registry
from aiecg.signal.delineation import BEAT_COLUMNS, LEAD_COLUMNS

MEASUREMENTS = "measurements.csv"
BEATS = "beats.csv"
LEADS = "leads.csv"
GLOBAL_COLUMNS: tuple[str, ...] = (
    "heart_rate_bpm", "rr_ms", "pr_ms", "p_duration_ms", "qrs_duration_ms", "qt_ms", "qtc_bazett_ms",
    "qtc_fridericia_ms", "p_axis_deg", "qrs_axis_deg", "t_axis_deg",
)
AMPLITUDE_WAVES: tuple[str, ...] = ("P", "Q", "R", "S", "T", "ST", "J")
CRITERIA_COLUMNS: tuple[str, ...] = tuple(
    column for name in criteria_registry.ECG_CRITERIA for column in (name, f"{name}_positive"))
"""Every registered criterion (LVH criteria and the findings reported beside them, e.g. pathological Q waves):
its score and its call (1, 0, or empty when unknown)."""
HEAD_COLUMNS: tuple[str, ...] = ("file", "record_id", "status", "reason", "qc_notes", "bad_leads", "paced", "sex",
                                 "n_beats", "n_clean")


MeasureError = InputError
"""The inputs of ``aiecg measure`` are not usable as given (nothing found, an unknown ``--format``)."""
MeasureTask = InputRecord
"""One input file: path, record id, reader format/options (from a cohort YAML), why the cohort refuses it."""
PROCESSED = ("ok", "paced", "qc_fail")
"""Statuses of a file that was measured (QC's refusal keeps the measurements where a median beat exists)."""


def collect_inputs(inputs: Iterable[str | Path], fmt: str | None = None) -> list[InputRecord]:
    """One task per ECG file the inputs name (:func:`aiecg.inputs.expand_inputs`, as ``aiecg predict``)."""
    return expand_inputs(inputs, fmt)


def _criteria(m: dict[str, float], sex: str) -> dict[str, float]:
    """Every registered criterion's score and call; a sex-specific one is unknown (NaN) when the file does not
    say the sex."""
    out: dict[str, float] = {}
    for name, criterion in criteria_registry.ECG_CRITERIA.items():
        try:
            result = criterion(m, sex)
        except ValueError:  # a sex-specific cut-off and no sex in the file
            out[name], out[f"{name}_positive"] = math.nan, math.nan
            continue
        out[name] = result.score
        out[f"{name}_positive"] = math.nan if result.positive is None else float(result.positive)
    return out


def measure_file(task: MeasureTask, with_beats: bool = False, with_leads: bool = False,
                 ) -> tuple[dict[str, Any], pd.DataFrame | None, pd.DataFrame | None]:
    """Measure one file: (its measurements row, its per-beat table or None, its per-lead table or None). Never
    raises for a bad file."""
    from aiecg.io import read_ecg
    from aiecg.signal.record import analyse_ecg

    row: dict[str, Any] = {"file": task.file, "record_id": task.record_id or Path(task.file).stem, "status": "ok",
                           "reason": ""}
    try:
        if task.problem:  # refused before opening (e.g. a path outside the cohort's ECG folder)
            raise ECGReadError(task.file, task.problem)
        if not task.file:
            raise ECGReadError(task.record_id, "the cohort table names no ECG file for this record")
        ecg = read_ecg(task.file, format=task.format, **(task.options or {}))
        row["record_id"] = task.record_id or ecg.record_id or row["record_id"]
        analysis = analyse_ecg(ecg)
        per_beat = analysis.table if with_beats else None  # delineated on first use: inside the guard
        per_lead = analysis.lead_table if with_leads else None
    except ECGReadError as exc:
        row.update(status="read_error", reason=exc.reason)
        return row, None, None
    except KeyError as exc:  # leads missing that cannot be derived
        row.update(status="read_error", reason=str(exc.args[0]))
        return row, None, None
    except Exception as exc:  # odd data must not stop the batch
        row.update(status="processing_error", reason=f"{type(exc).__name__}: {exc}")
        return row, None, None
    beats = analysis.beats
    sex = str(ecg.patient.get("sex", "") or "").lower()
    status = "qc_fail" if not beats.qc_ok else ("paced" if beats.paced else "ok")
    row.update(status=status, reason=beats.qc_reason, qc_notes="; ".join(beats.qc_notes),
               bad_leads=" ".join(beats.bad_leads), paced=beats.paced, sex=sex, n_beats=int(beats.r_peaks.size),
               n_clean=int(beats.clean.sum()))
    m = analysis.measurements
    for key in GLOBAL_COLUMNS:
        row[key] = m.get(key, math.nan)
    for wave in AMPLITUDE_WAVES:
        for lead in STANDARD_LEADS:
            row[f"{wave}_{lead}"] = m.get(f"{wave}_{lead}", math.nan)
    row.update(_criteria(m, sex) if m else dict.fromkeys(CRITERIA_COLUMNS, math.nan))
    tables = []
    for frame in (per_beat, per_lead):
        if frame is not None:
            frame = frame.copy()
            frame.insert(0, "file", task.file)
        tables.append(frame)
    return row, tables[0], tables[1]


def measure_files(tasks: Sequence[MeasureTask], with_beats: bool = False, workers: int = 1,
                  progress: bool = False, with_leads: bool = False, limits: Limits | None = None,
                  ) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Measure every task in ``workers`` supervised processes (:mod:`aiecg.data.workers`, as ``prepare`` runs
    them: a file that crashes, hangs or exhausts its reader is its own error row); returns (measurements, beats or
    None, per-lead table or None) in task order. ``limits``: the time and memory one file may take in its worker
    (``--record-timeout``, ``--max-memory-mb``, as ``prepare`` has)."""
    jobs = [(k, (task, with_beats, with_leads)) for k, task in enumerate(tasks)]
    results: list[tuple[dict[str, Any], pd.DataFrame | None, pd.DataFrame | None]] = [({}, None, None)] * len(jobs)
    for key, outcome in _progress(run_supervised(measure_file, jobs, workers, limits), len(jobs), progress):
        if outcome.kind == OK:
            results[key] = outcome.value
            row = results[key][0]
            row["status"], row["reason"] = record_failure(row["status"], row["reason"], limits)
        else:
            task = tasks[key]
            status, reason = failure_row(outcome, limits)
            results[key] = ({"file": task.file, "record_id": task.record_id or Path(task.file).stem,
                             "status": status, "reason": reason}, None, None)
    columns = list(HEAD_COLUMNS) + list(GLOBAL_COLUMNS) + [
        f"{w}_{lead}" for w in AMPLITUDE_WAVES for lead in STANDARD_LEADS] + list(CRITERIA_COLUMNS)
    table = pd.DataFrame([r[0] for r in results]).reindex(columns=columns)
    out: list[pd.DataFrame | None] = [None, None]
    for k, (wanted, columns) in enumerate(((with_beats, BEAT_COLUMNS), (with_leads, LEAD_COLUMNS))):
        if wanted:
            frames = [r[k + 1] for r in results if r[k + 1] is not None and len(r[k + 1])]
            out[k] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["file", *columns])
    return table, out[0], out[1]


def _progress(it: Iterable, total: int, show: bool) -> Iterable:
    if not show:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="measure", unit="ECG")


DECIMALS_BY_SUFFIX: tuple[tuple[str, int], ...] = (
    ("_positive", 0), ("_ms", 0), ("_deg", 0), ("_bpm", 1), ("_s", 3))
"""Decimals each quantity is written with, by column suffix: what the measurement can resolve. Intervals and
durations in whole milliseconds (a sample lasts 2 ms at 500 Hz, 1 ms at 1 kHz), axes in whole degrees, the rate
to 0.1 bpm, fiducial times in seconds to the millisecond."""
AMPLITUDE_DECIMALS = 3
"""Amplitudes and voltage criteria in mV to the microvolt (ECG converters resolve 1-5 uV)."""
CRITERION_DECIMALS = {"cornell_product": 1, "romhilt_estes": 0, "pathological_q_waves": 0}
"""Criteria scores not in mV: the Cornell product in mV x ms, the point and count scores whole."""


def round_to_resolution(frame: pd.DataFrame) -> pd.DataFrame:
    """Every float column rounded to the precision its quantity has (PR 138 ms, not 137.829)."""
    decimals: dict[str, int] = {}
    amplitudes = {f"{w}_{lead}" for w in AMPLITUDE_WAVES for lead in STANDARD_LEADS}
    for column in frame.columns:
        if not pd.api.types.is_float_dtype(frame[column]):
            continue
        if column in CRITERION_DECIMALS:
            decimals[column] = CRITERION_DECIMALS[column]
        elif column in amplitudes or column in criteria_registry.ECG_CRITERIA:
            decimals[column] = AMPLITUDE_DECIMALS
        else:
            found = next((d for suffix, d in DECIMALS_BY_SUFFIX if column.endswith(suffix)), None)
            if found is not None:
                decimals[column] = found
    return frame.round(decimals)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_csv(round_to_resolution(frame), path, float_format="%.6g")


def run_measure(inputs: Sequence[str | Path], out: str | Path, with_beats: bool = False, fmt: str | None = None,
                workers: int = 1, progress: bool = False, with_leads: bool = False,
                limits: Limits | None = None) -> dict[str, Any]:
    """Measure the inputs into ``out/measurements.csv`` (and ``out/beats.csv`` with ``with_beats``,
    ``out/leads.csv`` with ``with_leads``).

    ``fmt`` forces one reader format for files and folders (a cohort YAML names its own). The files are one
    set: an earlier run's are removed before measuring and ``measurements.csv`` is written last, so a folder
    never pairs one run's measurements with another's beats (a killed run leaves no measurements.csv).
    Returns a summary: files per status and the paths written.
    """
    tasks = collect_inputs(inputs, fmt)
    root = check_output(out)
    for stale in (MEASUREMENTS, BEATS, LEADS):
        (root / stale).unlink(missing_ok=True)
    table, beats, leads = measure_files(tasks, with_beats, workers, progress, with_leads, limits)
    summary: dict[str, Any] = {"files": len(table), "status": table["status"].value_counts().to_dict(),
                               "measurements": str(root / MEASUREMENTS)}
    if beats is not None:
        _write_csv(root / BEATS, beats)
        summary.update(beats=str(root / BEATS), n_beats=len(beats))
    if leads is not None:
        _write_csv(root / LEADS, leads)
        summary.update(leads=str(root / LEADS))
    _write_csv(root / MEASUREMENTS, table)  # last: its presence marks a complete set
    check_processed(summary["status"], PROCESSED, "files", str(root / MEASUREMENTS))
    return summary
