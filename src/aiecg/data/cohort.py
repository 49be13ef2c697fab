"""A cohort: a participant table plus a YAML mapping that says what each column means.

The reference code kept UK Biobank/SHIP paths and column names in a Python file users had to edit; here a
cohort is described in YAML (paths relative to the YAML file)::

    name: synthetic-ukb
    table: cohort.parquet            # .parquet or .csv
    id_column: eid
    sex: {column: sex, male: 1, female: 0}
    ecg: {column: ecg_file, format: cardiosoft}   # or {dir: ecg, pattern: "{id}_20205_2_0.xml"}
                                                  # options: reader arguments, e.g. {variable: H12, fs: 500}
    targets: {MASS: lvm, INDEXED_MASS: ilvm, LVH: lvh, HN: remodelling}
    clinical:
      binary: [hypertension, sex, diabetes]
      categorical: {smoking: [0, 1, 2]}
      continuous: [sbp, dbp, age, bmi]
      ranges: {sbp: [50, 300]}       # optional; overrides the built-in human ranges
    split: {column: strat_fold, train: [1, 2, 3, 4, 5, 6, 7, 8], val: [9], test: [10]}   # optional, predefined
    group: patient_id                # optional: rows sharing it (one patient's ECGs) never straddle splits

The YAML is checked against this schema before anything is read (a wrong key says which and what it should be;
an unknown ``format`` or reader option is refused), and what it may expand to is capped (YAML aliases).

Ids are text, always (``001000001`` keeps its zeros); a row without an id is an error naming the row. A
non-numeric cell (``abc``, ``n/a``) in a required target or a continuous clinical column excludes its row with
that reason; an empty cell is a missing value.

ECG paths stay inside the ECG folder: relative paths in the ``ecg.column`` resolve against ``ecg.dir`` (default:
the YAML's folder) and a ``{id}`` pattern against ``ecg.dir``; one that leads outside it (``..``, an id such as
``../../etc/passwd``) is refused as that record's error. To use files elsewhere on purpose, write absolute
paths in the table's ECG column (what ``aiecg cohort`` writes): those are taken as given.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiecg.conventions import decode_sex, level_key
from aiecg.data.cohort_schema import load_yaml, validate_mapping
from aiecg.data.targets import TargetSpec, mapping_keys, target_spec
from aiecg.errors import CohortError

HUMAN_RANGES: dict[str, tuple[float, float]] = {
    "age": (16, 110), "height": (100, 230), "weight": (25, 300), "bmi": (10, 80), "bsa": (1.0, 3.5),
    "sbp": (60, 280), "dbp": (30, 160), "total_chol": (1, 20), "non_hdl_chol": (0.5, 18),
    "vent_rate": (20, 250),
}
"""Values outside these ranges are not human measurements; rows holding them are excluded with a reason."""

ID, IS_MALE, ECG_PATH, SPLIT, GROUP = "id", "is_male", "ecg_path", "split", "group"
"""Canonical column names of :attr:`Cohort.frame`."""
PROBLEM = "problem"
"""Column of :func:`ecg_records`: why a record's ECG must not be opened ('' when it may)."""

MAX_ID_LENGTH = 200


@dataclass(frozen=True)
class ClinicalSpec:
    """Which table columns are clinical inputs, and of what kind."""

    binary: tuple[str, ...] = ()
    categorical: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    continuous: tuple[str, ...] = ()
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.binary, *self.categorical, *self.continuous)))

    def out_of_range(self, column: str, value: float) -> str | None:
        """Why a continuous clinical value is no human measurement (outside ``ranges``), or None: the one check
        for a cohort's rows and for the clinical values of files to predict."""
        low, high = self.ranges.get(column, (-math.inf, math.inf))
        if pd.isna(value) or low <= value <= high:
            return None
        return f"clinical value {column}={value:g} outside human range {low:g}-{high:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "binary": list(self.binary),
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "continuous": list(self.continuous),
            "ranges": {k: list(v) for k, v in self.ranges.items()},
        }


@dataclass(frozen=True)
class CohortMapping:
    """The parsed cohort YAML."""

    name: str
    root: Path
    table: Path
    id_column: str
    sex_column: str
    male_code: Any
    female_code: Any
    ecg_format: str | None
    ecg_options: dict[str, Any]
    ecg_column: str | None
    ecg_dir: Path | None
    ecg_pattern: str | None
    targets: dict[str, str]
    clinical: ClinicalSpec
    source: Path | None = None
    split: dict[str, Any] | None = None
    group_column: str | None = None


def load_mapping(path: str | Path) -> CohortMapping:
    """Parse and validate a cohort YAML file.

    Raises:
        CohortError: the YAML is not valid against the schema (the message names the key), or names an unknown
            target, format or reader option.
    """
    path = Path(path)
    raw = load_yaml(path)
    where = str(path)
    validate_mapping(raw, where)
    root = path.parent.resolve()
    sex = raw["sex"]
    ecg = raw.get("ecg") or {}
    targets = {str(k).upper(): str(v) for k, v in (raw.get("targets") or {}).items()}
    for name in targets:
        if name not in mapping_keys():
            raise CohortError(
                f"{where}: unknown target '{name}' under 'targets'; known: {', '.join(mapping_keys())}"
            )
    clinical_raw = raw.get("clinical") or {}
    ranges = {**HUMAN_RANGES, **{str(k): tuple(v) for k, v in (clinical_raw.get("ranges") or {}).items()}}
    clinical = ClinicalSpec(
        binary=tuple(str(c) for c in clinical_raw.get("binary") or ()),
        categorical={str(k): tuple(v) for k, v in (clinical_raw.get("categorical") or {}).items()},
        continuous=tuple(str(c) for c in clinical_raw.get("continuous") or ()),
        ranges=ranges,
    )
    return CohortMapping(
        name=str(raw.get("name", path.stem)),
        root=root,
        table=(root / raw["table"]).resolve(),
        id_column=str(raw["id_column"]),
        sex_column=str(sex["column"]),
        male_code=sex["male"],
        female_code=sex["female"],
        ecg_format=ecg.get("format"),
        ecg_options=dict(ecg.get("options") or {}),
        ecg_column=str(ecg["column"]) if ecg.get("column") is not None else None,
        ecg_dir=(root / ecg["dir"]).resolve() if ecg.get("dir") else None,
        ecg_pattern=ecg.get("pattern"),
        targets=targets,
        clinical=clinical,
        source=path.resolve(),
        split=raw.get("split"),
        group_column=str(raw["group"]) if raw.get("group") is not None else None,
    )


@dataclass
class Cohort:
    """A validated cohort.

    Attributes:
        mapping: the parsed YAML.
        frame: one row per usable participant: ``id`` (str), ``is_male`` (0/1), ``ecg_path``, one column per
            mapped target named by the target (``INDEXED_MASS``, ``LVH``, ...), and the clinical columns under
            their table names.
        exclusions: rows left out, with the table row number, the id and the reason.
    """

    mapping: CohortMapping
    frame: pd.DataFrame
    exclusions: pd.DataFrame

    @property
    def ids(self) -> np.ndarray:
        return self.frame[ID].to_numpy()

    def write_exclusions(self, path: str | Path) -> Path:
        from aiecg.csvfile import write_csv

        return write_csv(self.exclusions, path)


def _csv_sep(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def read_table(path: Path, id_column: str | None = None) -> pd.DataFrame:
    """Read a cohort table from Parquet or CSV (the id column of a CSV as text, so ``001`` stays ``001``)."""
    if not path.exists():
        raise CohortError(f"cohort table {path} not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
            table = pd.read_csv(path, sep=_csv_sep(path), dtype={id_column: str} if id_column else None)
        else:
            raise CohortError(f"cohort table {path}: unsupported suffix {path.suffix!r}; use .parquet or .csv")
    except CohortError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many kinds on a damaged table
        raise CohortError(f"cohort table {path} cannot be read ({type(exc).__name__}: {exc})") from None
    table.columns = [str(c) for c in table.columns]
    return table


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value).strip()


def _text_columns(mapping: CohortMapping, table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The cells of ``columns`` as written (a CSV re-read as text: pandas would turn 'n/a' into NaN)."""
    columns = [c for c in dict.fromkeys(columns) if c in table.columns]
    if mapping.table.suffix.lower() in (".csv", ".tsv", ".txt") and columns:
        raw = pd.read_csv(mapping.table, sep=_csv_sep(mapping.table), dtype=str, keep_default_na=False,
                          usecols=columns)
        raw.index = table.index
        return raw.map(_cell_text)
    return table[columns].map(_cell_text)


def read_ids(mapping: CohortMapping, table: pd.DataFrame) -> pd.Series:
    """The id column as text; ids read as numbers lose nothing (``1000001.0`` is ``1000001``).

    Raises:
        CohortError: the column is missing, or rows have no id or an absurdly long one.
    """
    where = f"cohort table {mapping.table}"
    if mapping.id_column not in table.columns:
        raise CohortError(f"{where}: id column '{mapping.id_column}' not found; the table has {list(table.columns)}")
    column = table[mapping.id_column]
    if column.dtype.kind == "f":
        ids = column.map(lambda v: level_key(v) if pd.notna(v) else "")
    else:
        ids = column.map(_cell_text)
    blank = ids == ""
    if blank.any():
        rows = ", ".join(str(i + 2) for i in table.index[blank][:20])
        raise CohortError(f"{where}: {int(blank.sum())} row(s) have no id in column '{mapping.id_column}' "
                          f"(rows {rows}); give every row an id or remove it")
    long = ids.str.len() > MAX_ID_LENGTH
    if long.any():
        raise CohortError(f"{where}: the id in row {table.index[long][0] + 2} is longer than {MAX_ID_LENGTH} "
                          "characters; is the id column right?")
    return ids.astype(str)


def _numeric(mapping: CohortMapping, table: pd.DataFrame, text: pd.DataFrame, column: str) -> tuple[pd.Series,
                                                                                                   pd.Series]:
    """A column as numbers, and which rows held text that is not a number (their value becomes missing)."""
    values = pd.to_numeric(table[column], errors="coerce").astype(float)
    cells = text[column]
    bad = values.isna() & (cells != "") & (cells.str.lower() != "nan")
    infinite = np.isinf(values)
    return values.where(~infinite), bad | infinite


def _inside(base: str, path: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def _resolve_ecg_paths(mapping: CohortMapping, table: pd.DataFrame, ids: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Each row's ECG path, and why it must not be opened ('' when it may): it leads outside the ECG folder."""
    paths, problems = [], []
    if mapping.ecg_column:
        if mapping.ecg_column not in table.columns:
            raise CohortError(f"{mapping.source}: ECG column '{mapping.ecg_column}' not in table {mapping.table}")
        base = os.path.normpath(mapping.ecg_dir or mapping.root)
        for value in table[mapping.ecg_column]:
            name = _cell_text(value)
            if not name or os.path.isabs(name):  # absolute paths in the table: taken as given, on purpose
                paths.append(os.path.normpath(name) if name else "")
                problems.append("")
                continue
            path = os.path.normpath(os.path.join(base, name))
            paths.append(path)
            problems.append("" if _inside(base, path) else
                            f"ECG path {name!r} leads outside the cohort's ECG folder {base}; write a path inside "
                            "it, or an absolute path if the file is elsewhere on purpose")
    elif mapping.ecg_dir and mapping.ecg_pattern:
        base = os.path.normpath(mapping.ecg_dir)
        for record_id in ids:
            name = mapping.ecg_pattern.format(id=record_id)
            path = os.path.normpath(os.path.join(base, name))
            paths.append(path)
            problems.append("" if _inside(base, path) and os.path.dirname(path) == os.path.dirname(
                os.path.normpath(os.path.join(base, mapping.ecg_pattern.format(id="x")))) else
                f"id {record_id!r} makes the ECG path {name!r} point outside the ECG folder {base}; "
                "ids must not hold '/' or '..'")
    else:
        paths, problems = [""] * len(table), [""] * len(table)
    return pd.Series(paths, index=table.index, dtype=object), pd.Series(problems, index=table.index, dtype=object)


def derive_lvh(frame: pd.DataFrame, spec_mass: TargetSpec) -> pd.Series:
    """LVH label from a (indexed) mass column by the sex-specific cut-offs of ``spec_mass``."""
    assert spec_mass.lvh_thresholds is not None
    values = frame[spec_mass.outputs[0]].to_numpy(dtype=float)
    labels = spec_mass.lvh_thresholds.classify(values, frame[IS_MALE].to_numpy())
    return pd.Series(np.where(np.isfinite(values), labels, np.nan), index=frame.index)


def _check_class_codes(mapping: CohortMapping, frame: pd.DataFrame, required_targets: tuple[str, ...]) -> None:
    """A categorical target the run needs (and a mapped LVH column, which labels, stratifies and scores every run)
    must be coded 0..k-1 as its TargetSpec says: an LVH column coded 1/2 would otherwise train to the end on wrong
    labels. Raises CohortError naming the column and the codes seen."""
    for key in dict.fromkeys([*required_targets, "LVH"]):
        spec = mapping_keys().get(key)
        if key not in frame or key not in mapping.targets or spec is None or not spec.is_categorical:
            continue
        if spec.invalid_codes(frame[key].tolist()):
            seen = sorted({f"{v:g}" if isinstance(v, float) else str(v) for v in frame[key].dropna().unique()})[:10]
            codes = ", ".join(f"{i} = {name}" for i, name in enumerate(spec.classes))
            raise CohortError(f"{mapping.source}: target column '{mapping.targets[key]}' ({key}) holds codes {seen}; "
                              f"{key} must be coded {codes}. Recode the column (e.g. 1/2 -> 0/1).")


def load_cohort(path: str | Path, required_targets: tuple[str, ...] = ()) -> Cohort:
    """Load and validate a cohort.

    Duplicate ids are an error listing the rows (which record is right cannot be guessed). Rows with an
    unknown sex code, a missing or impossible value of a required target, or a clinical value outside
    human range are excluded, each with its reason in :attr:`Cohort.exclusions`.

    Args:
        path: the cohort YAML.
        required_targets: target names (table keys such as ``INDEXED_MASS``) every kept row must have.
    """
    mapping = load_mapping(path)
    table = read_table(mapping.table, mapping.id_column)
    where = f"cohort table {mapping.table}"
    needed = [mapping.id_column, mapping.sex_column, *mapping.clinical.columns]
    needed += [c for k, c in mapping.targets.items() if k in required_targets]
    missing = [c for c in dict.fromkeys(needed) if c not in table.columns]
    if missing:
        raise CohortError(
            f"{where}: columns {missing} named in {mapping.source} are missing; "
            f"the table has {list(table.columns)}"
        )
    for name in required_targets:
        if name not in mapping.targets and not (name == "LVH" and {"INDEXED_MASS", "MASS"} & set(mapping.targets)):
            raise CohortError(f"{mapping.source}: target {name} is not mapped under 'targets'")

    ids = read_ids(mapping, table)
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        rows = ", ".join(f"row {i + 2} (id {v})" for i, v in duplicated.head(20).items())
        raise CohortError(f"{where}: duplicate participant ids in column '{mapping.id_column}': {rows}. "
                          "Remove or merge the duplicates.")
    numeric_columns = [c for k, c in mapping.targets.items() if k in required_targets and c in table.columns]
    text = _text_columns(mapping, table, [*numeric_columns, *mapping.clinical.continuous])

    frame = pd.DataFrame({ID: ids})
    reasons: list[tuple[int, str, str]] = []

    sex_raw = table[mapping.sex_column]
    is_male = sex_raw.map(lambda value: decode_sex(value, mapping.male_code, mapping.female_code)).astype(float)
    for i in table.index[is_male.isna()]:
        reasons.append((i, ids[i], f"unknown sex code {sex_raw[i]} in column '{mapping.sex_column}' "
                        f"(expected {mapping.male_code!r} or {mapping.female_code!r})"))
    frame[IS_MALE] = is_male
    paths, problems = _resolve_ecg_paths(mapping, table, ids)
    frame[ECG_PATH] = paths.where(problems == "", "")  # a path outside the ECG folder is never handed on
    if mapping.group_column is not None:
        if mapping.group_column not in table.columns:
            raise CohortError(f"{where}: group column '{mapping.group_column}' named in {mapping.source} is missing")
        groups = table[mapping.group_column]
        frame[GROUP] = groups.map(level_key).where(groups.notna(), ids)  # a row without a group is its own group
    if mapping.split is not None:
        column = mapping.split["column"]
        if column not in table.columns:
            raise CohortError(f"{where}: split column '{column}' named in {mapping.source} is missing")
        names = {level_key(v): name for name in ("train", "val", "test") for v in mapping.split[name]}
        frame[SPLIT] = table[column].map(lambda v: names.get(level_key(v)) if pd.notna(v) else None)
        for i in table.index[frame[SPLIT].isna()]:
            value = table[column][i]
            reasons.append((i, ids[i], f"split column '{column}' value {value} is in none of train/val/test"))

    for name, column in mapping.targets.items():
        if column in table.columns:
            frame[name] = pd.to_numeric(table[column], errors="coerce")
            if name in required_targets:
                values, bad = _numeric(mapping, table, text, column)
                frame[name] = values
                for i in table.index[bad]:
                    reasons.append((i, ids[i], f"non-numeric {name} value {text[column][i]!r} in column '{column}' "
                                    "(a number, or an empty cell if missing)"))
    _check_class_codes(mapping, frame, required_targets)
    if "LVH" not in frame:
        for source in ("INDEXED_MASS", "MASS"):
            if source in frame:
                frame["LVH"] = derive_lvh(frame, target_spec(source))
                break
    for name in required_targets:
        values = frame[name]
        spec = mapping_keys().get(name)
        low, high = spec.output_range(name) if spec is not None and spec.is_regression else (-np.inf, np.inf)
        column = mapping.targets.get(name, name)
        unreadable = pd.Series(False, index=table.index)
        if column in text:
            unreadable = (text[column] != "") & (text[column].str.lower() != "nan")
        for i in table.index[values.isna() & ~unreadable]:
            reasons.append((i, ids[i], f"missing {name} (column '{column}')"))
        bad = values.notna() & ((values < low) | (values > high))
        for i in table.index[bad]:
            reasons.append((i, ids[i], f"impossible {name} value {values[i]} (expected {low}-{high})"))

    for column in mapping.clinical.columns:
        frame[column] = table[column]
    for column in mapping.clinical.continuous:
        values, bad = _numeric(mapping, table, text, column)
        frame[column] = values
        for i in table.index[bad]:
            reasons.append((i, ids[i], f"non-numeric value {text[column][i]!r} in clinical column '{column}' "
                            "(a number, or an empty cell if missing)"))
        for i in table.index[values.notna()]:
            if (why := mapping.clinical.out_of_range(column, values[i])) is not None:
                reasons.append((i, ids[i], why))

    exclusions = pd.DataFrame(reasons, columns=["row", ID, "reason"])
    if len(exclusions):
        exclusions = exclusions.groupby(["row", ID], as_index=False)["reason"].agg("; ".join)
        exclusions["row"] = exclusions["row"] + 2  # 1-based, after the header line, as a spreadsheet shows it
    kept = frame.drop(index=sorted({r for r, _, _ in reasons})).reset_index(drop=True)
    kept[IS_MALE] = kept[IS_MALE].astype(np.int64)
    return Cohort(mapping=mapping, frame=kept, exclusions=exclusions)


def ecg_records(path: str | Path) -> pd.DataFrame:
    """Every (id, ecg_path, format, options, problem) of a cohort's table, before any row validation.

    ``prepare`` processes all ECGs a cohort names; which participants a run uses is decided later. ``problem``
    says why a record's file must not be opened ('' when it may).
    """
    mapping = load_mapping(path)
    table = read_table(mapping.table, mapping.id_column)
    ids = read_ids(mapping, table)
    if ids.duplicated().any():
        raise CohortError(f"cohort table {mapping.table}: duplicate ids {sorted(set(ids[ids.duplicated()]))[:10]}")
    paths, problems = _resolve_ecg_paths(mapping, table, ids)
    frame = pd.DataFrame({ID: ids, ECG_PATH: paths})
    frame["format"] = mapping.ecg_format
    frame["options"] = [mapping.ecg_options] * len(frame)
    frame[PROBLEM] = problems
    return frame
