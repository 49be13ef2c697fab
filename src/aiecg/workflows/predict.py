"""``aiecg predict``: a trained bundle applied to ECG files, one row per file, nothing lost.

Each file goes through the bundle's own input contract (:func:`check_recording`: can its pre-processing serve
this rate, these leads, this duration?), then prepare's per-record path (:func:`aiecg.data.prepare.prepare_record`
with the bundle's saved pre-processing), then the bundle's clinical encoder, THE prediction loop
(:func:`aiecg.predict.predict`), target scaling, post-hoc models and thresholds, and the split-conformal
prediction intervals saved at training time. A file that cannot be read, fails QC, cannot be served or lacks
its clinical row gets a row with its status and reason and no prediction.

Output columns: ``file, record_id, status, reason, qc`` (``pass``/``fail``, empty where not assessed), ``paced``
(the paced chamber where pacing spikes were found; the row's reason and a warning line say so where the model was
trained without paced ECGs, or its bundle does not record whether it was),
``is_m`` (sex used for the sex-specific outputs: clinical table, else the ECG file's header), ``sex_source``,
``n_imputed``/``imputed`` (clinical values the encoder imputed), ``mostly_imputed`` (more than half of the
model's clinical inputs imputed), then the outputs with the results table's names (``ilvm_pred``,
``ilvm_pred_lower``/``ilvm_pred_upper`` and ``interval``, ``lvh_pred_cutoff``, ``lvh_proba``,
``lvh_proba_prioradj``, ``lvh_proba_lr``, ``lvh_proba_prioradj_lr``, ``lvh_call`` and ``call_threshold``: the
evaluated operating point, the saved Youden-optimal cut-off of the validation split on ``lvh_proba`` or
``lvh_proba_lr``, ``hn_proba_*``), where the bundle has them. A row without a sex gets none of the sex-specific
outputs, and its reason names them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aiecg.bundle import REFIX, Bundle, load_bundle
from aiecg.contract import check_recording, paced_caution
from aiecg.conventions import decode_sex, level_key
from aiecg.data.cohort import ID, load_mapping, read_ids, read_table
from aiecg.data.features import encoder_sex_code, header_sex_code
from aiecg.data.prepare import PrepareConfig, model_input_of, prepare_record
from aiecg.data.store import STATUS_OK
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.data.workers import OK, Limits, Outcome, failure_row, record_failure, run_supervised
from aiecg.errors import (
    AiecgError,
    BundleError,
    CohortError,
    ECGReadError,
    ECGValidationError,
    check_processed,
    one_line,
)
from aiecg.evaluate.conformal import ConformalIntervals
from aiecg.evaluate.posthoc import PostHoc, posthoc_columns
from aiecg.evaluate.results import results_table
from aiecg.files import process_gone
from aiecg.inputs import check_format, expand_inputs
from aiecg.io import read_ecg
from aiecg.predict import predict

log = logging.getLogger("aiecg")

STATUS_UNSUPPORTED = "unsupported"
STATUS_CLINICAL = "clinical_error"
"""Formats a folder scan skips unless ``--format`` names them (their files are usually not ECGs)."""
BASE_COLUMNS = ["file", "record_id", "status", "reason", "qc", "paced", "is_m", "sex_source", "n_imputed", "imputed",
                "mostly_imputed", "heart_rate", "n_beats", "n_clean"]


# ----------------------------------------------------------------------------------------- inputs
@dataclass
class _Source:
    """Where clinical values and sex come from for a group of records."""

    table: pd.DataFrame | None  # indexed by id (str)
    sex_column: str | None
    male_code: Any = 1
    female_code: Any = 0
    where: str = ""


def _clinical_table(path: str | Path | pd.DataFrame, id_column: str | None) -> tuple[pd.DataFrame, str]:
    if isinstance(path, pd.DataFrame):
        table, where = path, "the clinical table"
    else:
        table, where = read_table(Path(path), id_column), str(path)
    if not id_column:
        raise CohortError(f"{where}: say which column holds the ECG's id with --id-column")
    if id_column not in table.columns:
        raise CohortError(f"{where}: id column '{id_column}' not found; the table has {list(table.columns)}")
    ids = table[id_column].astype(str).str.strip()
    if ids.duplicated().any():
        raise CohortError(f"{where}: duplicate ids in '{id_column}': {sorted(set(ids[ids.duplicated()]))[:10]}")
    return table.set_index(ids.rename(ID)), where


def collect_records(inputs: Sequence[str | Path], fmt: str | None = None, clinical: Any = None,
                    id_column: str | None = None, sex_column: str = "sex") -> tuple[pd.DataFrame, list[_Source]]:
    """Every ECG the inputs name (:func:`aiecg.inputs.expand_inputs`, as ``aiecg measure``), in order:
    ``record_id, file, format, options, source`` (index into the list of clinical sources), ``match`` (the ids
    its clinical row may have) and ``problem``. A cohort YAML's records take their clinical values and sex coding
    from its own table; files and folders from ``clinical``."""
    sources: list[_Source] = []
    source_of: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for record in expand_inputs(inputs, fmt):
        if record.cohort not in source_of:
            if record.cohort:
                mapping = load_mapping(record.cohort)
                table = read_table(mapping.table, mapping.id_column)
                ids = read_ids(mapping, table)
                sources.append(_Source(table.set_index(ids.rename(ID)), mapping.sex_column, mapping.male_code,
                                       mapping.female_code, record.cohort))
            else:
                table, where = _clinical_table(clinical, id_column) if clinical is not None else (None, "")
                sources.append(_Source(table, sex_column, where=where))
            source_of[record.cohort] = len(sources) - 1
        stem = Path(record.file).stem
        rows.append({"record_id": record.record_id or stem, "file": record.file, "format": record.format,
                     "options": record.options or {}, "source": source_of[record.cohort],
                     # UKB files are named {eid}_20205_2_0.xml
                     "match": [record.record_id] if record.cohort else [stem, stem.split("_")[0]],
                     "problem": record.problem})
    columns = ["record_id", "file", "format", "options", "source", "match", "problem"]
    return pd.DataFrame(rows, columns=columns), sources


IMPUTE_HINT = ("to leave them out, so that the model's encoder imputes them (its training medians and modes; each "
               "row then says so in n_imputed, imputed and mostly_imputed), add --impute-missing-columns "
               "(impute_missing_columns=True in Python)")


def _clinical_values(records: pd.DataFrame, sources: list[_Source], bundle: Bundle,
                     impute_missing_columns: bool = False) -> pd.DataFrame:
    """Per record: the encoder's raw clinical columns, ``is_m`` from the table, ``clinical_reason`` where a
    record cannot be encoded, and ``imputed`` (the columns the encoder will impute).

    A clinical column the source lacks altogether (or a missing table) is refused, naming the columns, unless
    ``impute_missing_columns``: then every row gets the encoder's imputed value for it, and says so."""
    encoder = bundle.encoder
    columns = list(encoder.spec.columns) if encoder is not None else []
    for source in sources:
        if not columns:
            break
        if source.table is None and not impute_missing_columns:
            raise CohortError(f"the model was trained with {len(columns)} clinical variables ({', '.join(columns)}) "
                              "and no clinical table was given: pass them with --clinical table.csv --id-column "
                              f"COLUMN (clinical=, id_column= in Python), or, {IMPUTE_HINT}")
        if source.table is not None:
            absent = [c for c in columns if c not in source.table.columns]
            if absent and not impute_missing_columns:
                raise CohortError(f"{source.where}: {len(absent)} of the model's {len(columns)} clinical columns are "
                                  f"missing: {', '.join(absent)}. Add them under these names (rename a column that "
                                  f"holds one), or, {IMPUTE_HINT}")
            if absent:
                log.warning("%s: clinical column(s) %s absent: imputed for every row (--impute-missing-columns)",
                            source.where, ", ".join(absent))
                source.table = source.table.assign(**dict.fromkeys(absent, np.nan))
    out = pd.DataFrame(index=records.index, columns=[*columns, "is_m", "clinical_reason", "imputed"], dtype=object)
    out["is_m"] = np.nan
    out["clinical_reason"] = ""
    out["imputed"] = ""
    for i, rec in records.iterrows():
        source = sources[rec["source"]]
        row = None
        if source.table is not None:
            key = next((k for k in rec["match"] if k in source.table.index), None)
            row = source.table.loc[key] if key is not None else None
        if row is not None and source.sex_column in source.table.columns:
            out.at[i, "is_m"] = decode_sex(row[source.sex_column], source.male_code, source.female_code)
        if not columns:
            continue
        if row is None and source.table is None:  # no table at all (--impute-missing-columns): all imputed
            row = pd.Series(np.nan, index=columns, dtype=object)
        if row is None:
            out.at[i, "clinical_reason"] = (f"no row for id {' or '.join(dict.fromkeys(rec['match']))} in "
                                            f"{source.where}; the model needs its clinical variables")
            continue
        imputed, problems = [], []
        for column in columns:
            value = row[column]
            if column == source.sex_column and np.isfinite(float(out.at[i, "is_m"])):
                value = encoder_sex_code(encoder, column, float(out.at[i, "is_m"]), value, source.male_code,
                                         source.female_code)
            if column in encoder.spec.continuous:
                number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
                if pd.isna(number) and pd.notna(value) and str(value).strip().lower() not in ("", "nan", "na"):
                    problems.append(f"non-numeric value {str(value)!r} in clinical column '{column}'")
                value = number
                if (why := encoder.spec.out_of_range(column, value)) is not None:
                    problems.append(why)
            elif column in encoder.spec.categorical and pd.notna(value):
                if level_key(value) not in {level_key(v) for v in encoder.spec.categorical[column]}:
                    problems.append(f"clinical column '{column}' level {_plain(value)!r} not among the model's "
                                    f"{list(encoder.spec.categorical[column])}")
            elif column in encoder.spec.binary and pd.notna(value):
                positive = level_key(encoder.binary_positive[column])
                known = {positive, level_key(encoder.fill[column])} | ({"0"} if positive == "1" else set())
                if len(known) == 2 and level_key(value) not in known:
                    problems.append(f"binary clinical column '{column}' value {_plain(value)!r} is neither of "
                                    f"{sorted(known)}")
            if pd.isna(value):
                imputed.append(column)
            out.at[i, column] = value
        out.at[i, "imputed"] = ";".join(imputed)
        if problems:
            out.at[i, "clinical_reason"] = "; ".join(problems)
    return out


# ----------------------------------------------------------------------------------------- per-file work
def _process(task: tuple[list[tuple[str, str, str | None, dict, str]], dict[str, Any]]) -> list[dict]:
    """Worker: read, check, pre-process a chunk of records; returns rows with the model's input (``ecg``: its
    leads of the median beat, the rhythm strip or both, as the bundle reads)."""
    records, input_spec = task
    config = PrepareConfig.for_model(input_spec)
    results = []
    for record_id, file, fmt, options, problem in records:
        row: dict[str, Any] = {"status": "", "reason": "", "qc": "", "header_sex": math.nan, "ecg": None}
        if problem:  # the cohort refuses to open this file (e.g. a path outside its ECG folder)
            row.update(status="read_error", reason=problem)
            results.append(row)
            continue
        try:
            ecg = read_ecg(file, format=fmt, **(options or {}))
        except (ECGReadError, ECGValidationError) as exc:
            row.update(status="read_error", reason=str(getattr(exc, "reason", exc)))
            results.append(row)
            continue
        row["header_sex"] = decode_sex(ecg.patient.get("sex"), 1, 0)
        try:
            check_recording(input_spec, {"fs": ecg.fs, "leads": ecg.leads, "duration_s": ecg.duration_s}, file)
        except BundleError as exc:
            row.update(status=STATUS_UNSUPPORTED, reason=str(exc))
            results.append(row)
            continue
        result = prepare_record(record_id, file, fmt, config, options, ecg=ecg)
        row.update(status=result["status"], reason=result.get("reason", ""), paced=result.get("paced", ""),
                   heart_rate=result.get("heart_rate"), n_beats=result.get("n_beats"), n_clean=result.get("n_clean"))
        if result["status"] == STATUS_OK:
            row.update(qc="pass", ecg=model_input_of(result, input_spec))
        elif result["status"] == "qc_fail":
            row["qc"] = "fail"
        results.append(row)
    return results


# ----------------------------------------------------------------------------------------- outputs
def _call_column(spec: TargetSpec) -> str:
    """The probability ``lvh_call`` holds against the saved threshold: the one the threshold was chosen and
    evaluated on (the model's ``lvh_proba``, or the LR model's ``lvh_proba_lr``)."""
    return "lvh_proba" if spec.kind is TaskKind.BINARY else "lvh_proba_lr"


def _check_target_prevalence(spec: TargetSpec, posthoc: PostHoc, target_prevalence: float | None) -> None:
    """Refuse a ``--target-prevalence`` outside (0, 1), or one the bundle's probabilities cannot be shifted to.

    A stated prevalence changes only the ``*_prioradj`` probabilities (Saerens et al. 2002: what a probability
    of LVH means in that population), never ``lvh_call``: at a fixed cut-off on the score, sensitivity and
    specificity do not depend on the prevalence, so the call stays at the operating point that was evaluated.
    """
    if target_prevalence is None:
        return
    if not 0 < target_prevalence < 1:
        raise AiecgError(f"--target-prevalence must lie in (0, 1), e.g. 0.02 for 2%; got {target_prevalence}")
    basis = posthoc.model_prevalence if spec.kind is TaskKind.BINARY else posthoc.validation_prevalence
    if basis is None:
        raise BundleError("--target-prevalence: this bundle records no prevalence its LVH probabilities reflect "
                          "(a target without LVH outputs, or a validation split without both classes), so they "
                          "cannot be shifted to another prevalence")


def _output_columns(spec: TargetSpec, posthoc: PostHoc, conformal: ConformalIntervals | None, y_pred: np.ndarray,
                    is_male: np.ndarray, level: float, target_prevalence: float | None) -> pd.DataFrame:
    """The prediction columns for rows of one sex code (results-table names, post-hoc, call, interval)."""
    n = len(y_pred)
    table = results_table(np.arange(n), is_male, spec, np.full((n, y_pred.shape[1]), np.nan), y_pred)
    table = table.drop(columns=[c for c in table.columns if c in ("eid", "is_m", "lvh_true") or c.endswith("_true")])
    _check_target_prevalence(spec, posthoc, target_prevalence)
    if target_prevalence is not None:
        posthoc = dataclasses.replace(posthoc, target_prevalence=target_prevalence)
    extra = posthoc_columns(spec, posthoc, y_pred, is_male)
    for column in extra.columns:
        table[column] = extra[column].to_numpy()
    primary = _call_column(spec)
    if posthoc.threshold is not None and primary in table:  # the evaluated operating point, whatever the prevalence
        table["lvh_call"] = (table[primary].to_numpy() >= posthoc.threshold).astype(float)
        table["call_threshold"] = posthoc.threshold
    if spec.is_regression and conformal is not None:
        lower, upper = conformal.intervals(y_pred, spec.outputs, level, is_male)
        for k, stem in enumerate(spec.stems):
            table[f"{stem}_pred_lower"] = lower[:, k]
            table[f"{stem}_pred_upper"] = upper[:, k]
        table["interval"] = level
    return table


def _probe(spec: TargetSpec, scaling: Any, n_outputs: int) -> np.ndarray:
    """Predictions spanning what the model can output (25 values per output), to tell which columns depend on sex
    whatever the batch holds."""
    if spec.is_regression:
        mean = np.asarray(scaling.mean if scaling is not None else np.zeros(n_outputs), float)
        sd = np.asarray(scaling.sd if scaling is not None else np.ones(n_outputs), float)
        return mean + np.linspace(-4, 4, 25)[:, None] * sd
    return np.repeat(np.linspace(0.01, 0.99, 25)[:, None], n_outputs, axis=1)


def prediction_columns(spec: TargetSpec, posthoc: PostHoc, conformal: ConformalIntervals | None,
                       y_pred: np.ndarray, is_male: np.ndarray, level: float = 0.9,
                       target_prevalence: float | None = None, scaling: Any = None) -> tuple[pd.DataFrame, list[str]]:
    """Prediction columns in target units, and the names of the sex-specific ones.

    One rule for a row of unknown sex (NaN): every column whose value depends on sex (a sex-specific cut-off,
    the LR model, a call on either, a recalibration) stays empty; the regression intervals fall back to the
    pooled (marginal) split-conformal interval. A column depends on sex when the male and female versions
    differ for any prediction the model can make (checked on the batch and on a probe spanning the outputs), so
    the rule does not depend on which rows a batch holds.
    """
    is_male = np.asarray(is_male, dtype=float)
    n = len(y_pred)
    both = np.concatenate([y_pred, _probe(spec, scaling, y_pred.shape[1])]) if n else _probe(
        spec, scaling, y_pred.shape[1])
    male = _output_columns(spec, posthoc, conformal, both, np.ones(len(both), np.int64), level, target_prevalence)
    female = _output_columns(spec, posthoc, conformal, both, np.zeros(len(both), np.int64), level, target_prevalence)
    out = pd.DataFrame(index=range(n))
    sex_specific = []
    for column in male.columns:
        m, f = male[column].to_numpy(dtype=float), female[column].to_numpy(dtype=float)
        differs = bool(np.any((m != f) & ~(np.isnan(m) & np.isnan(f))))
        if differs:
            sex_specific.append(column)
        unknown = np.nan if differs else m[:n]
        out[column] = np.where(is_male == 1, m[:n], np.where(is_male == 0, f[:n], unknown))
    if spec.is_regression and conformal is not None:  # unknown sex: the pooled (marginal) interval
        lower, upper = conformal.intervals(y_pred, spec.outputs, level)
        unknown = ~np.isin(is_male, (0, 1))
        for k, stem in enumerate(spec.stems):
            out.loc[unknown, f"{stem}_pred_lower"] = lower[unknown, k]
            out.loc[unknown, f"{stem}_pred_upper"] = upper[unknown, k]
    pooled = {f"{stem}_pred_{side}" for stem in spec.stems for side in ("lower", "upper")}
    return out, [c for c in sex_specific if c not in pooled]


# ----------------------------------------------------------------------------------------- the workflow
def predict_files(
    bundle: Bundle | str | Path,
    inputs: str | Path | Sequence[str | Path],
    clinical: str | Path | pd.DataFrame | None = None,
    id_column: str | None = None,
    sex_column: str = "sex",
    fmt: str | None = None,
    workers: int = 1,
    interval: float = 0.9,
    engine: str = "torch",
    onnx_path: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = False,
    target_prevalence: float | None = None,
    impute_missing_columns: bool = False,
    limits: Limits | None = None,
) -> pd.DataFrame:
    """Apply a trained bundle to ECG files; one row per input ECG (see the module docstring for the columns).

    Args:
        bundle: a bundle or its path.
        inputs: ECG files, folders (searched recursively) and/or cohort YAMLs (every ECG their table names,
            with their own clinical columns and sex coding); one path or a list of them.
        clinical: for files and folders: a table (CSV/Parquet path or DataFrame) with the clinical variables
            under the names the model was trained with; required for models trained with clinical variables.
        id_column: the table's id column; a row matches a file whose stem is the id, or starts with ``id_``
            (UK Biobank names files ``{eid}_20205_2_0.xml``).
        sex_column: the table's sex column (1/0 or male/female); without it sex comes from the ECG file's header.
        fmt: force one reader (``cardiosoft``, ``wfdb``, ...) instead of detection.
        workers: processes that read and pre-process files; each file is read in a supervised child process, so
            a file that crashes, hangs or exhausts its reader is one error row.
        interval: level of the split-conformal prediction intervals of regression outputs.
        engine: ``torch`` or ``onnx`` (ONNX Runtime; ``onnx_path`` an ``aiecg export`` of this bundle, else the
            bundle is exported to a temporary file).
        batch_size: ECGs per forward pass.
        progress: show a progress bar.
        target_prevalence: the LVH prevalence of the population predicted on: the ``*_prioradj`` probabilities
            are shifted to it (Saerens et al. 2002; default: the prevalence the bundle's summary names).
            ``lvh_call`` does not change: it stays at the evaluated operating point (see :func:`bundle_summary`).
        impute_missing_columns: a clinical column the table lacks (or every one, without a table) is imputed by
            the model's encoder for every row, instead of refused; the rows say so (``n_imputed``, ``imputed``,
            ``mostly_imputed``).
        limits: time and memory one file may take in its worker (``--record-timeout``, ``--max-memory-mb``, as
            ``prepare`` has); beyond them the file is one error row and the others go on.

    Raises:
        AiecgError: a bundle, table or column that cannot be used at all (each file's own problems are rows).
    """
    if not 0 < interval < 1:
        raise AiecgError(f"--interval must lie in (0, 1), got {interval}")
    if engine not in ("torch", "onnx"):
        raise AiecgError(f"--engine must be torch or onnx, got {engine!r}")
    if batch_size < 1 or workers < 1:
        raise AiecgError(f"--batch-size and --workers must be at least 1, got {batch_size} and {workers}")
    if onnx_path is not None and engine != "onnx":
        raise AiecgError(f"--onnx {onnx_path} is used only by --engine onnx; add --engine onnx, or drop --onnx")
    check_format(fmt)
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    spec = bundle.target
    try:
        PrepareConfig.for_model(bundle.input_spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle.where}: its saved pre-processing is not usable by this aiecg version "
                          f"({type(exc).__name__}: {one_line(exc)}); {REFIX}") from None
    _check_target_prevalence(spec, _posthoc_models(bundle)[0], target_prevalence)  # refused before any file
    records, sources = collect_records(inputs, fmt, clinical, id_column, sex_column)
    clinical_values = _clinical_values(records, sources, bundle, impute_missing_columns)

    n = len(records)
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    y_pred = np.full((n, spec.n_outputs), np.nan)
    todo = list(range(n))  # every file is read, so a file's own problem is reported before a clinical one

    model = _engine(bundle, engine, onnx_path)
    parts = [[i] for i in todo]  # one file per task: a worker that dies or hangs costs that file's row only
    tasks = [([(records.at[i, "record_id"], records.at[i, "file"], records.at[i, "format"],
                records.at[i, "options"], records.at[i, "problem"]) for i in part], bundle.input_spec)
             for part in parts]
    pending: list[tuple[int, np.ndarray]] = []
    bar = tqdm(total=len(todo), desc="predict", unit="ECG", disable=not progress)

    def flush() -> None:
        if not pending:
            return
        index = np.asarray([i for i, _ in pending])
        ecg = np.stack([m for _, m in pending])
        meta = _encode(bundle, clinical_values.loc[index])  # after each row's sex is settled
        y_pred[index] = predict(model, ecg, meta, spec, bundle.scaling, batch_size=batch_size)
        pending.clear()

    for part, results in zip(parts, _run(tasks, workers, limits)):
        for i, result in zip(part, results):
            ecg = result.pop("ecg")
            rows[i] = result
            _header_sex_for_encoder(clinical_values, i, result.get("header_sex", math.nan),
                                    sources[records.at[i, "source"]], bundle)
            reason = clinical_values.at[i, "clinical_reason"]
            if reason and result["status"] == STATUS_OK:
                result.update(status=STATUS_CLINICAL, reason=reason)
            elif ecg is not None:
                pending.append((i, ecg))
        if len(pending) >= 4 * batch_size:
            flush()
        bar.update(len(part))
    flush()
    bar.close()
    table = _table(records, rows, clinical_values, y_pred, bundle, interval, target_prevalence)
    _warn_imputed(table, bundle)
    _warn_paced(table, bundle)
    return table


ONNX_SCRATCH = "aiecg-onnx-"
"""Prefix of the scratch folder of an on-the-fly export (``aiecg-onnx-PID-...`` in the temporary directory)."""


def sweep_onnx_scratch(root: str | Path | None = None) -> list[Path]:
    """Remove on-the-fly export folders whose process is gone (a predict killed with SIGKILL cannot clean up);
    returns what was removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{ONNX_SCRATCH}*-*"):
        pid = folder.name[len(ONNX_SCRATCH):].split("-", 1)[0]
        if pid.isdigit() and process_gone(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _engine(bundle: Bundle, engine: str, onnx_path: str | Path | None) -> Any:
    if engine == "torch":
        return bundle.build_model()
    from aiecg.workflows.export import check_export, export_bundle

    if onnx_path is None:  # export on the fly; ONNX Runtime holds the graph, so the file goes at once
        sweep_onnx_scratch()
        with tempfile.TemporaryDirectory(prefix=f"{ONNX_SCRATCH}{os.getpid()}-") as scratch:
            onnx_path = export_bundle(bundle, Path(scratch) / "model.onnx")["onnx"]
            model = check_export(onnx_path, bundle)
    else:
        model = check_export(onnx_path, bundle)
    ecg_shape = model.input_shapes.get("ecg", [None, None, None])[1:]
    meta_shape = model.input_shapes.get("meta", [None, 0])[1:]
    if (model.n_outputs, ecg_shape, meta_shape) != (bundle.n_outputs, [bundle.n_leads, bundle.n_samples],
                                                    [bundle.n_meta]):
        raise BundleError(f"{onnx_path} is not an export of this bundle: inputs ecg {ecg_shape}, meta {meta_shape} and "
                          f"{model.n_outputs} outputs, where the bundle's model has [{bundle.n_leads}, "
                          f"{bundle.n_samples}], [{bundle.n_meta}] and {bundle.n_outputs}; run aiecg export again")
    return model


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, so a reason reads 7, not np.int64(7)."""
    return value.item() if isinstance(value, np.generic) else value


def _header_sex_for_encoder(values: pd.DataFrame, i: int, header_sex: float, source: _Source, bundle: Bundle) -> None:
    """One sex per row: where the table leaves a record's sex empty and the ECG header has it, the network gets
    the header's sex too (:func:`aiecg.data.features.header_sex_code`), as the threshold, the LR model and the
    interval do, not the encoder's imputed one."""
    column = source.sex_column
    if column not in values.columns:
        return
    code = header_sex_code(bundle.encoder, column, header_sex, float(values.at[i, "is_m"]), values.at[i, column],
                           source.male_code, source.female_code)
    if pd.notna(code):
        values.at[i, column] = code
        values.at[i, "imputed"] = ";".join(c for c in str(values.at[i, "imputed"]).split(";") if c and c != column)


def _encode(bundle: Bundle, values: pd.DataFrame) -> np.ndarray:
    """The encoder's features for every record that has clinical values (zeros elsewhere, never used)."""
    meta = np.zeros((len(values), bundle.n_meta), np.float32)
    if bundle.encoder is None:
        return meta
    ok = (values["clinical_reason"] == "").to_numpy()
    if ok.any():
        frame = values.loc[ok, list(bundle.encoder.spec.columns)].reset_index(drop=True)
        for column in bundle.encoder.spec.continuous:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        meta[ok] = bundle.encoder.transform(frame)
    return meta


def _failed_row(outcome: Outcome, limits: Limits | None = None) -> dict[str, Any]:
    status, reason = failure_row(outcome, limits)
    return {"status": status, "reason": reason, "qc": "", "header_sex": math.nan, "ecg": None}


def _run(tasks: list, workers: int, limits: Limits | None = None) -> Iterator[list[dict]]:
    """Each task's rows, in task order, from supervised worker processes (:mod:`aiecg.data.workers`, as
    ``prepare`` runs them): a file that crashes, hangs or exhausts memory in its worker is its own error row."""
    done: dict[int, list[dict]] = {}
    following = 0
    jobs = [(k, (task,)) for k, task in enumerate(tasks)]
    for key, outcome in run_supervised(_process, jobs, workers, limits):
        done[key] = outcome.value if outcome.kind == OK else [_failed_row(outcome, limits)]
        for row in done[key]:
            row["status"], row["reason"] = record_failure(row["status"], row["reason"], limits)
        while following in done:
            yield done.pop(following)
            following += 1


def _table(records: pd.DataFrame, rows: list[dict], clinical: pd.DataFrame, y_pred: np.ndarray, bundle: Bundle,
           level: float, target_prevalence: float | None = None) -> pd.DataFrame:
    base = pd.DataFrame(rows, index=records.index)
    base.insert(0, "file", records["file"].astype(str))
    base.insert(1, "record_id", records["record_id"].astype(str))
    table_sex = clinical["is_m"].to_numpy(dtype=float)
    header_sex = base["header_sex"].to_numpy(dtype=float) if "header_sex" in base else np.full(len(base), np.nan)
    base["is_m"] = np.where(np.isfinite(table_sex), table_sex, header_sex)
    base["sex_source"] = np.where(np.isfinite(table_sex), "table", np.where(np.isfinite(header_sex), "ecg", ""))
    base["imputed"] = clinical["imputed"].astype(str)
    base["n_imputed"] = [len(s.split(";")) if s else 0 for s in base["imputed"]]
    n_clinical = len(bundle.encoder.spec.columns) if bundle.encoder is not None else 0
    base["mostly_imputed"] = base["n_imputed"] > n_clinical / 2 if n_clinical else False
    for column in BASE_COLUMNS:
        if column not in base:
            base[column] = np.nan
    base = base[BASE_COLUMNS].reset_index(drop=True)
    for column in ("reason", "qc", "paced"):
        base[column] = base[column].fillna("").astype(str)
    ok = (base["status"] == STATUS_OK).to_numpy()
    for i in np.flatnonzero(ok):  # a paced ECG the model never saw: say so in its row
        _add_reason(base, i, paced_caution(bundle.input_spec, base.at[i, "paced"]))
    posthoc, conformal = _posthoc_models(bundle)
    outputs, sex_specific = prediction_columns(bundle.target, posthoc, conformal, y_pred[ok],
                                               base["is_m"].to_numpy()[ok], level, target_prevalence, bundle.scaling)
    full = pd.DataFrame(np.nan, index=base.index, columns=outputs.columns)
    full.loc[ok, :] = outputs.to_numpy()
    unknown_sex = ok & ~np.isin(base["is_m"].to_numpy(dtype=float), (0, 1))
    if sex_specific:
        for i in np.flatnonzero(unknown_sex):
            _add_reason(base, i, f"sex unknown (neither the table nor the ECG header gives it): "
                                 f"{', '.join(sex_specific)} left empty; give the sex to get them")
    return pd.concat([base, full], axis=1)


def _add_reason(base: pd.DataFrame, i: int, text: str) -> None:
    """Append ``text`` to row ``i``'s reason ('; ' between reasons)."""
    if text:
        base.at[i, "reason"] = "; ".join(r for r in (base.at[i, "reason"], text) if r)


def _posthoc_models(bundle: Bundle) -> tuple[PostHoc, ConformalIntervals | None]:
    """The bundle's post-hoc models and conformal intervals; a malformed one is a :class:`BundleError`."""
    try:
        return (PostHoc.from_dict(bundle.thresholds.get("posthoc")),
                ConformalIntervals.from_dict(bundle.thresholds.get("conformal")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{bundle.where}: its post-hoc models or conformal intervals are malformed "
                          f"({type(exc).__name__}: {one_line(exc)}); {REFIX}") from None


def write_predictions(table: pd.DataFrame, out: str | Path) -> Path:
    """CSV (through :func:`aiecg.csvfile.write_csv`: formula cells neutralised), or Parquet for a
    ``.parquet``/``.pq`` suffix."""
    from aiecg.csvfile import write_csv
    from aiecg.files import atomic_write_bytes

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        import io

        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        atomic_write_bytes(out, buffer.getvalue())
    else:
        write_csv(table, out)
    return out


def _warn_imputed(table: pd.DataFrame, bundle: Bundle) -> None:
    """One warning line where predictions rest on imputed clinical inputs: how many values, how many rows rest
    mostly on them (``mostly_imputed``)."""
    if bundle.encoder is None:
        return
    scored = table[table["status"] == STATUS_OK]
    n_values = int(scored["n_imputed"].sum())
    if n_values:
        n_columns = len(bundle.encoder.spec.columns)
        log.warning("%d of the %d clinical values of %d predicted row(s) were imputed (the model's training "
                    "medians and modes); %d row(s) rest mostly on imputed inputs (more than %d of %d; column "
                    "mostly_imputed): treat their predictions with caution", n_values, n_columns * len(scored),
                    len(scored), int(scored["mostly_imputed"].sum()), n_columns // 2, n_columns)


def _warn_paced(table: pd.DataFrame, bundle: Bundle) -> None:
    """One warning line naming the paced files predicted by a model that never saw a paced ECG (or whose bundle
    does not say); each row's ``reason`` says so too."""
    flagged = table[(table["status"] == STATUS_OK) & (table["paced"] != "")]
    if flagged.empty or not paced_caution(bundle.input_spec, "flagged"):
        return
    files = ", ".join(flagged["file"].head(10)) + (f" and {len(flagged) - 10} more" if len(flagged) > 10 else "")
    why = ("was trained without paced ECGs" if bundle.input_spec.get("include_paced") is False
           else "does not record whether paced ECGs were in its training data")
    log.warning("%d paced ECG file(s) predicted by a model that %s: %s (column paced; each row's reason): treat "
                "their predictions with caution", len(flagged), why, files)


def _cohort_name(path: str | None) -> str | None:
    """The ``name`` of a cohort YAML a bundle was trained on, where it can still be read (older bundles record
    only the path), else the YAML's folder name."""
    if not path:
        return None
    try:
        return load_mapping(path).name
    except (AiecgError, OSError):
        return Path(path).parent.name or Path(path).stem


def bundle_summary(bundle: Bundle, target_prevalence: float | None = None) -> dict[str, Any]:
    """What a bundle's predictions rest on: its target and model, the cohort it was trained on (name, size, LVH
    prevalence of its training split, or ``lvh_prevalence_train_unknown`` where an older bundle does not record
    it; synthetic cohorts say so), its clinical inputs, the operating point of its LVH call and the prevalence its
    ``*_prioradj`` probabilities reflect (``target_prevalence`` where the user states one).

    The call is the saved Youden-optimal cut-off (Youden 1950) chosen on the validation split; at a fixed cut-off
    sensitivity and specificity do not depend on the prevalence, PPV and NPV do. The bundle saves no sensitivity
    and specificity at that cut-off, so the call's PPV and NPV at a stated prevalence are not given here (``aiecg
    evaluate --target-prevalence`` reports them from a labelled split); the summary says so.
    """
    training = bundle.training
    posthoc = _posthoc_models(bundle)[0]
    name = training.get("cohort_name") or _cohort_name(training.get("cohort"))
    summary: dict[str, Any] = {
        "target": bundle.target.name, "model": bundle.model_name, "trained_on": name,
        "n_train": training.get("n_train"),
        "lvh_prevalence_train": training.get("lvh_prevalence"),
        "clinical_variables": len(bundle.encoder.spec.columns) if bundle.encoder is not None else 0,
    }
    if "lvh_prevalence" not in training and posthoc.target_prevalence is not None:
        # a bundle from before aiecg recorded it: the post-hoc target prevalence may be one stated at training
        # (--target-prevalence), so it is not passed off as the training split's
        summary["lvh_prevalence_train_unknown"] = "not recorded in this bundle (written by an older aiecg)"
    if "finetune_cohort" in training:  # the fine-tuning cohort's split: what the tuned weights last learned from
        summary["finetuned_on"] = _cohort_name(training["finetune_cohort"])
        summary["finetune_n_train"] = training.get("finetune_n_train")
        summary["finetune_lvh_prevalence"] = training.get("finetune_lvh_prevalence")
    if posthoc.threshold is not None:
        summary["lvh_call"] = {
            "rule": f"{_call_column(bundle.target)} >= {posthoc.threshold:.4g}", "threshold": posthoc.threshold,
            "rests_on": "the Youden-optimal cut-off chosen on the validation split; its sensitivity and "
                        "specificity do not depend on the prevalence, its PPV and NPV do",
        }
    prioradj = target_prevalence if target_prevalence is not None else posthoc.target_prevalence
    if prioradj is not None and (posthoc.model_prevalence or posthoc.validation_prevalence):
        summary["prioradj_prevalence"] = prioradj
        summary["prioradj_prevalence_source"] = "stated" if target_prevalence is not None else "bundle"
        if "lvh_call" in summary and target_prevalence is not None:
            summary["lvh_call"]["ppv_npv_at_stated_prevalence"] = (
                "not available: the bundle saves no sensitivity and specificity at its threshold; aiecg evaluate "
                f"--target-prevalence {prioradj:g} reports them on a labelled cohort (metrics.json: prevalence)")
    summary["synthetic"] = bool(name and "synth" in str(name).lower())
    return summary


def describe_bundle(summary: dict[str, Any]) -> str:
    """The bundle's summary as one line (``aiecg predict`` logs it before predicting)."""
    text = f"model: {summary['model']} predicting {summary['target']}, trained on '{summary['trained_on']}'"
    if summary.get("synthetic"):
        text += " (SYNTHETIC data: not for clinical use)"
    if summary.get("n_train"):
        text += f", {summary['n_train']} training participants"
    if summary.get("lvh_prevalence_train") is not None:
        text += f", LVH prevalence {summary['lvh_prevalence_train']:.1%} in its training split"
    elif summary.get("lvh_prevalence_train_unknown"):
        text += f", LVH prevalence of its training split unknown ({summary['lvh_prevalence_train_unknown']})"
    if summary.get("finetuned_on"):
        text += f"; fine-tuned on '{summary['finetuned_on']}'"
        if summary.get("finetune_n_train"):
            text += f" ({summary['finetune_n_train']} training participants"
            if summary.get("finetune_lvh_prevalence") is not None:
                text += f", LVH prevalence {summary['finetune_lvh_prevalence']:.1%}"
            text += ")"
    if "lvh_call" in summary:
        text += f"; lvh_call: {summary['lvh_call']['rule']}, {summary['lvh_call']['rests_on']}"
    if summary.get("prioradj_prevalence") is not None:
        stated = summary["prioradj_prevalence_source"] == "stated"
        text += (f"; *_prioradj probabilities reflect an LVH prevalence of {summary['prioradj_prevalence']:.1%} ("
                 + ("--target-prevalence" if stated else "state your population's with --target-prevalence") + ")")
        if stated and "lvh_call" in summary:
            text += f"; PPV/NPV of lvh_call at it: {summary['lvh_call']['ppv_npv_at_stated_prevalence']}"
    return text


def predict_run(bundle: str | Path, inputs: Sequence[str | Path], out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`predict_files`, then write the table to ``out``; returns what the bundle rests on, counts per
    status and of imputed values, and the path.

    Raises:
        NothingProcessedError: not one file got a prediction (the table, every row with its reason, is written).
    """
    from aiecg.files import check_output

    check_output(out, "file")
    loaded = load_bundle(bundle)
    summary = bundle_summary(loaded, kwargs.get("target_prevalence"))
    log.info(describe_bundle(summary))
    table = predict_files(loaded, inputs, **kwargs)
    path = write_predictions(table, out)
    counts = table["status"].value_counts().to_dict()
    check_processed(counts, (STATUS_OK,), "files", str(path))
    predicted = table[table["status"] == STATUS_OK]  # what the predictions rest on
    return {"out": str(path), "records": len(table), "status_counts": counts,
            "imputed_values": int(predicted["n_imputed"].sum()),
            "rows_mostly_imputed": int(predicted["mostly_imputed"].sum()), "bundle": summary}
