"""``aiecg predict``: a trained bundle applied to ECG files, one row per file, nothing lost.

Each file goes through the bundle's own input contract (:func:`check_recording`: can its pre-processing serve
this rate, these leads, this duration?), then prepare's per-record path (:func:`aiecg.data.prepare.prepare_record`
with the bundle's saved pre-processing), then the bundle's clinical encoder, THE prediction loop
(:func:`aiecg.predict.predict`), target scaling, post-hoc models and thresholds, and the split-conformal
prediction intervals saved at training time. A file that cannot be read, fails QC, cannot be served or lacks
its clinical row gets a row with its status and reason and no prediction.

Output columns: ``file, record_id, status, reason, qc`` (``pass``/``fail``, empty where not assessed),
``is_m`` (sex used for the sex-specific outputs: clinical table, else the ECG file's header), ``sex_source``,
``n_imputed``/``imputed`` (clinical values the encoder imputed), then the outputs with the results table's names
(``ilvm_pred``, ``ilvm_pred_lower``/``ilvm_pred_upper`` and ``interval``, ``lvh_pred_cutoff``, ``lvh_proba``,
``lvh_proba_prioradj``, ``lvh_proba_lr``, ``lvh_proba_prioradj_lr``, ``lvh_call`` at the saved threshold,
``hn_proba_*``), where the bundle has them.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aiecg.bundle import Bundle, load_bundle
from aiecg.contract import check_recording
from aiecg.data.cohort import ECG_PATH, ID, ecg_records, level_key, load_mapping, read_ids, read_table
from aiecg.data.prepare import PrepareConfig, prepare_record
from aiecg.data.store import STATUS_OK
from aiecg.data.targets import TargetSpec, TaskKind
from aiecg.data.workers import CRASHED, ERROR, OK, OUT_OF_MEMORY, TIMED_OUT, Outcome, run_supervised
from aiecg.ecg import STANDARD_LEADS, normalise_lead_name
from aiecg.errors import AiecgError, BundleError, CohortError, ECGReadError, ECGValidationError
from aiecg.evaluate.conformal import ConformalIntervals
from aiecg.evaluate.posthoc import PostHoc, posthoc_columns
from aiecg.evaluate.results import results_table
from aiecg.io import ecg_files_in, get_reader, read_ecg
from aiecg.predict import predict

log = logging.getLogger("aiecg")

STATUS_UNSUPPORTED = "unsupported"
STATUS_CLINICAL = "clinical_error"
"""Formats a folder scan skips unless ``--format`` names them (their files are usually not ECGs)."""
BASE_COLUMNS = ["file", "record_id", "status", "reason", "qc", "is_m", "sex_source", "n_imputed", "imputed",
                "heart_rate", "n_beats", "n_clean"]


# ----------------------------------------------------------------------------------------- inputs
def _scan(folder: Path, fmt: str | None) -> list[Path]:
    """The ECG files under ``folder`` (:func:`aiecg.io.ecg_files_in`), logging how many others were skipped."""
    found, skipped = ecg_files_in(folder, fmt)
    if skipped:
        log.info("%s: %d file(s) skipped (not an ECG suffix, or a WFDB signal file)", folder, skipped)
    return found


@dataclass
class _Source:
    """Where clinical values and sex come from for a group of records."""

    table: pd.DataFrame | None  # indexed by id (str)
    sex_column: str | None
    male_code: Any = 1
    female_code: Any = 0
    where: str = ""


def _sex(value: Any, male: Any, female: Any) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    key = level_key(value)
    if key == level_key(male):
        return 1.0
    if key == level_key(female):
        return 0.0
    text = str(value).strip().lower()
    return 1.0 if text in ("male", "m") else 0.0 if text in ("female", "f") else math.nan


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
    """Every ECG the inputs name, in order: ``record_id, file, format, options, source`` (index into the list of
    clinical sources). Files are taken as given, folders are scanned recursively, a cohort YAML contributes
    every ECG its table names (with its own clinical columns and sex coding)."""
    rows: list[dict[str, Any]] = []
    sources: list[_Source] = []
    file_source = None
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() in (".yaml", ".yml"):
            mapping = load_mapping(path)
            table = read_table(mapping.table, mapping.id_column)
            records = ecg_records(path)
            ids = read_ids(mapping, table)
            sources.append(_Source(table.set_index(ids.rename(ID)), mapping.sex_column, mapping.male_code,
                                   mapping.female_code, str(path)))
            for r in records.itertuples():
                rows.append({"record_id": r.id, "file": getattr(r, ECG_PATH), "format": fmt or r.format,
                             "options": r.options, "source": len(sources) - 1, "match": [r.id],
                             "problem": str(getattr(r, "problem", "") or "")})
            continue
        if file_source is None:
            table, where = _clinical_table(clinical, id_column) if clinical is not None else (None, "")
            sources.append(_Source(table, sex_column, where=where))
            file_source = len(sources) - 1
        files = _scan(path, fmt) if path.is_dir() else [path]  # a missing file becomes an error row
        for file in files:
            stem = file.stem
            rows.append({"record_id": stem, "file": str(file), "format": fmt, "options": {}, "source": file_source,
                         "match": [stem, stem.split("_")[0]], "problem": ""})  # UKB files: {eid}_20205_2_0.xml
    if not rows:
        raise AiecgError("no ECG files found in the inputs given")  # as aiecg measure: an empty folder is an error
    columns = ["record_id", "file", "format", "options", "source", "match", "problem"]
    return pd.DataFrame(rows, columns=columns), sources


def _clinical_values(records: pd.DataFrame, sources: list[_Source], bundle: Bundle) -> pd.DataFrame:
    """Per record: the encoder's raw clinical columns, ``is_m`` from the table, ``clinical_reason`` where a
    record cannot be encoded, and ``imputed`` (the columns the encoder will impute)."""
    encoder = bundle.encoder
    columns = list(encoder.spec.columns) if encoder is not None else []
    for source in sources:
        if columns and source.table is None:
            raise CohortError(f"the model was trained with clinical variables {columns}; pass them with "
                              "--clinical table.csv --id-column COLUMN (or use an ECG-only model)")
        if source.table is not None and columns:
            absent = [c for c in columns if c not in source.table.columns]
            if absent:
                raise CohortError(f"{source.where}: clinical column(s) {absent} the model was trained with are "
                                  f"absent; it needs {columns} under the same names (rename them in the table)")
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
            out.at[i, "is_m"] = _sex(row[source.sex_column], source.male_code, source.female_code)
        if not columns:
            continue
        if row is None:
            out.at[i, "clinical_reason"] = (f"no row for id {' or '.join(dict.fromkeys(rec['match']))} in "
                                            f"{source.where}; the model needs its clinical variables")
            continue
        imputed, problems = [], []
        for column in columns:
            value = row[column]
            if column == source.sex_column and np.isfinite(float(out.at[i, "is_m"])):
                value = _encoder_sex_code(float(out.at[i, "is_m"]), source, bundle, value)
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
def _process(task: tuple[list[tuple[str, str, str | None, dict, str]], dict[str, Any], list[int]]) -> list[dict]:
    """Worker: read, check, pre-process a chunk of records; returns rows with the model-lead median beat."""
    records, input_spec, lead_rows = task
    config = PrepareConfig.from_dict(input_spec["preprocessing"])
    results = []
    for record_id, file, fmt, options, problem in records:
        row: dict[str, Any] = {"status": "", "reason": "", "qc": "", "header_sex": math.nan, "median": None}
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
        row["header_sex"] = _sex(ecg.patient.get("sex"), 1, 0)
        try:
            check_recording(input_spec, {"fs": ecg.fs, "leads": ecg.leads, "duration_s": ecg.duration_s}, file)
        except BundleError as exc:
            row.update(status=STATUS_UNSUPPORTED, reason=str(exc))
            results.append(row)
            continue
        result = prepare_record(record_id, file, fmt, config, options, ecg=ecg)
        row.update(status=result["status"], reason=result.get("reason", ""),
                   heart_rate=result.get("heart_rate"), n_beats=result.get("n_beats"), n_clean=result.get("n_clean"))
        if result["status"] == STATUS_OK:
            row.update(qc="pass", median=np.asarray(result["median"], np.float32)[lead_rows])
        elif result["status"] == "qc_fail":
            row["qc"] = "fail"
        results.append(row)
    return results


# ----------------------------------------------------------------------------------------- outputs
def _output_columns(spec: TargetSpec, posthoc: PostHoc, conformal: ConformalIntervals | None, y_pred: np.ndarray,
                    is_male: np.ndarray, level: float) -> pd.DataFrame:
    """The prediction columns for rows of one sex code (results-table names, post-hoc, call, interval)."""
    n = len(y_pred)
    table = results_table(np.arange(n), is_male, spec, np.full((n, y_pred.shape[1]), np.nan), y_pred)
    table = table.drop(columns=[c for c in table.columns if c in ("eid", "is_m", "lvh_true") or c.endswith("_true")])
    extra = posthoc_columns(spec, posthoc, y_pred, is_male)
    for column in extra.columns:
        table[column] = extra[column].to_numpy()
    primary = "lvh_proba" if spec.kind is TaskKind.BINARY else "lvh_proba_lr"
    if posthoc.threshold is not None and primary in table:
        table["lvh_call"] = (table[primary].to_numpy() >= posthoc.threshold).astype(float)
    if spec.is_regression and conformal is not None:
        lower, upper = conformal.intervals(y_pred, spec.outputs, level, is_male)
        for k, stem in enumerate(spec.stems):
            table[f"{stem}_pred_lower"] = lower[:, k]
            table[f"{stem}_pred_upper"] = upper[:, k]
        table["interval"] = level
    return table


def prediction_columns(spec: TargetSpec, posthoc: PostHoc, conformal: ConformalIntervals | None,
                       y_pred: np.ndarray, is_male: np.ndarray, level: float = 0.9) -> pd.DataFrame:
    """Prediction columns in target units; where sex is unknown (NaN) the sex-specific ones stay empty."""
    is_male = np.asarray(is_male, dtype=float)
    n = len(y_pred)
    male = _output_columns(spec, posthoc, conformal, y_pred, np.ones(n, np.int64), level)
    female = _output_columns(spec, posthoc, conformal, y_pred, np.zeros(n, np.int64), level)
    out = pd.DataFrame(index=range(n))
    for column in male.columns:
        m, f = male[column].to_numpy(dtype=float), female[column].to_numpy(dtype=float)
        same = (m == f) | (np.isnan(m) & np.isnan(f))
        out[column] = np.where(is_male == 1, m, np.where(is_male == 0, f, np.where(same, m, np.nan)))
    if spec.is_regression and conformal is not None:  # unknown sex: the pooled (marginal) interval
        lower, upper = conformal.intervals(y_pred, spec.outputs, level)
        unknown = ~np.isin(is_male, (0, 1))
        for k, stem in enumerate(spec.stems):
            out.loc[unknown, f"{stem}_pred_lower"] = lower[unknown, k]
            out.loc[unknown, f"{stem}_pred_upper"] = upper[unknown, k]
    return out


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
    if fmt is not None:
        try:
            get_reader(fmt)
        except ValueError as exc:
            raise AiecgError(str(exc)) from None
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    spec = bundle.target
    try:
        PrepareConfig.from_dict(bundle.input_spec["preprocessing"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"the bundle's saved pre-processing is not usable by this aiecg version ({exc}); "
                          "re-train or re-export the model with this version") from None
    _posthoc_models(bundle)  # a malformed one is refused before any file is read
    records, sources = collect_records(inputs, fmt, clinical, id_column, sex_column)
    clinical_values = _clinical_values(records, sources, bundle)
    lead_rows = [STANDARD_LEADS.index(normalise_lead_name(lead)) for lead in bundle.input_spec["leads"]]

    n = len(records)
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    y_pred = np.full((n, spec.n_outputs), np.nan)
    todo = list(range(n))  # every file is read, so a file's own problem is reported before a clinical one

    model = _engine(bundle, engine, onnx_path)
    parts = [[i] for i in todo]  # one file per task: a worker that dies or hangs costs that file's row only
    tasks = [([(records.at[i, "record_id"], records.at[i, "file"], records.at[i, "format"],
                records.at[i, "options"], records.at[i, "problem"]) for i in part], bundle.input_spec, lead_rows)
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

    for part, results in zip(parts, _run(tasks, workers)):
        for i, result in zip(part, results):
            median = result.pop("median")
            rows[i] = result
            _header_sex_for_encoder(clinical_values, i, result.get("header_sex", math.nan),
                                    sources[records.at[i, "source"]], bundle)
            reason = clinical_values.at[i, "clinical_reason"]
            if reason and result["status"] == STATUS_OK:
                result.update(status=STATUS_CLINICAL, reason=reason)
            elif median is not None:
                pending.append((i, median))
        if len(pending) >= 4 * batch_size:
            flush()
        bar.update(len(part))
    flush()
    bar.close()
    return _table(records, rows, clinical_values, y_pred, bundle, interval)


def _engine(bundle: Bundle, engine: str, onnx_path: str | Path | None) -> Any:
    if engine == "torch":
        return bundle.build_model()
    from aiecg.workflows.export import check_export, export_bundle

    if onnx_path is None:  # export on the fly; ONNX Runtime holds the graph, so the file goes at once
        with tempfile.TemporaryDirectory(prefix="aiecg-onnx-") as scratch:
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


def _encoder_sex_code(is_m: float, source: _Source, bundle: Bundle, value: Any) -> Any:
    """The value of the sex column that the encoder reads as sex ``is_m`` (1 male, 0 female).

    ``value`` itself where the encoder knows it (one of its two codes: as before, the table's coding is trusted);
    otherwise (``male``/``female`` text for a model trained on 1/0, or a missing value the header fills) the
    encoder's positive code where that means this sex under the source's coding (1/0, male/female, or the cohort
    YAML's codes), else its other code; ``value`` unchanged where the encoder's codes say nothing about sex.
    """
    encoder, column = bundle.encoder, source.sex_column
    if encoder is None or column not in encoder.spec.binary:
        return value
    positive, fill = encoder.binary_positive[column], encoder.fill[column]
    if pd.notna(value) and level_key(value) in {level_key(positive), level_key(fill)}:
        return value
    positive_sex = _sex(positive, source.male_code, source.female_code)
    if math.isnan(positive_sex):
        return value
    if positive_sex == is_m:
        return positive
    if level_key(fill) != level_key(positive):
        return fill
    code = source.male_code if is_m == 1 else source.female_code
    return code if level_key(code) != level_key(positive) else value


def _header_sex_for_encoder(values: pd.DataFrame, i: int, header_sex: float, source: _Source, bundle: Bundle) -> None:
    """One sex per row: where the table leaves a record's sex empty and the ECG header has it, the network gets
    the header's sex too (as the threshold, the LR model and the interval do), not the encoder's imputed one."""
    column = source.sex_column
    if (bundle.encoder is None or column not in bundle.encoder.spec.binary or not np.isfinite(header_sex)
            or np.isfinite(float(values.at[i, "is_m"])) or pd.notna(values.at[i, column])):
        return
    code = _encoder_sex_code(header_sex, source, bundle, math.nan)
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


_FAILED_WORKER = {CRASHED: "the reader crashed on this file (its worker process {detail})",
                  TIMED_OUT: "{detail}", OUT_OF_MEMORY: "ran out of memory reading this file",
                  ERROR: "processing failed: {detail}"}


def _failed_row(outcome: Outcome) -> dict[str, Any]:
    return {"status": outcome.kind if outcome.kind != ERROR else "processing_error",
            "reason": _FAILED_WORKER[outcome.kind].format(detail=outcome.detail), "qc": "", "header_sex": math.nan,
            "median": None}


def _run(tasks: list, workers: int) -> Iterator[list[dict]]:
    """Each task's rows, in task order, from supervised worker processes (:mod:`aiecg.data.workers`, as
    ``prepare`` runs them): a file that crashes, hangs or exhausts memory in its worker is its own error row."""
    done: dict[int, list[dict]] = {}
    following = 0
    for key, outcome in run_supervised(_process, [(k, (task,)) for k, task in enumerate(tasks)], workers):
        done[key] = outcome.value if outcome.kind == OK else [_failed_row(outcome)]
        while following in done:
            yield done.pop(following)
            following += 1


def _table(records: pd.DataFrame, rows: list[dict], clinical: pd.DataFrame, y_pred: np.ndarray, bundle: Bundle,
           level: float) -> pd.DataFrame:
    base = pd.DataFrame(rows, index=records.index)
    base.insert(0, "file", records["file"].astype(str))
    base.insert(1, "record_id", records["record_id"].astype(str))
    table_sex = clinical["is_m"].to_numpy(dtype=float)
    header_sex = base["header_sex"].to_numpy(dtype=float) if "header_sex" in base else np.full(len(base), np.nan)
    base["is_m"] = np.where(np.isfinite(table_sex), table_sex, header_sex)
    base["sex_source"] = np.where(np.isfinite(table_sex), "table", np.where(np.isfinite(header_sex), "ecg", ""))
    base["imputed"] = clinical["imputed"].astype(str)
    base["n_imputed"] = [len(s.split(";")) if s else 0 for s in base["imputed"]]
    for column in BASE_COLUMNS:
        if column not in base:
            base[column] = np.nan
    base = base[BASE_COLUMNS].reset_index(drop=True)
    base["reason"] = base["reason"].fillna("").astype(str)
    base["qc"] = base["qc"].fillna("").astype(str)
    ok = (base["status"] == STATUS_OK).to_numpy()
    posthoc, conformal = _posthoc_models(bundle)
    outputs = prediction_columns(bundle.target, posthoc, conformal, y_pred[ok], base["is_m"].to_numpy()[ok], level)
    full = pd.DataFrame(np.nan, index=base.index, columns=outputs.columns)
    full.loc[ok, :] = outputs.to_numpy()
    return pd.concat([base, full], axis=1)


def _posthoc_models(bundle: Bundle) -> tuple[PostHoc, ConformalIntervals | None]:
    """The bundle's post-hoc models and conformal intervals; a malformed one is a :class:`BundleError`."""
    try:
        return (PostHoc.from_dict(bundle.thresholds.get("posthoc")),
                ConformalIntervals.from_dict(bundle.thresholds.get("conformal")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"the bundle's post-hoc models or conformal intervals are malformed ({type(exc).__name__}: "
                          f"{exc}); re-train or re-export the model with aiecg") from None


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


def predict_run(bundle: str | Path, inputs: Sequence[str | Path], out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`predict_files`, then write the table to ``out``; returns counts per status and the path."""
    from aiecg.files import check_output

    check_output(out, "file")
    table = predict_files(bundle, inputs, **kwargs)
    path = write_predictions(table, out)
    return {"out": str(path), "records": len(table), "status_counts": table["status"].value_counts().to_dict(),
            "imputed_values": int(table["n_imputed"].sum())}
