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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

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


def level_key(value: Any) -> str:
    """A category's canonical text, so that 1, 1.0, "1" and numpy integers name the same level."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    try:
        return level_key(float(text))
    except ValueError:
        return text


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


def _require(mapping: dict, key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise CohortError(f"{where}: missing required key '{key}'")
    return mapping[key]


def load_mapping(path: str | Path) -> CohortMapping:
    """Parse a cohort YAML file.

    Raises:
        CohortError: the YAML is missing a required key or names an unknown target.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CohortError(f"cohort file {path} not found") from None
    except yaml.YAMLError as exc:
        raise CohortError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise CohortError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    where = str(path)
    root = path.parent.resolve()
    sex = _require(raw, "sex", where)
    if not isinstance(sex, dict) or not {"column", "male", "female"} <= set(sex):
        raise CohortError(
            f"{where}: 'sex' must give column, male and female codes, e.g. {{column: sex, male: 1, female: 0}}"
        )
    ecg = raw.get("ecg") or {}
    targets = {str(k).upper(): str(v) for k, v in (raw.get("targets") or {}).items()}
    for name in targets:
        if name not in mapping_keys():
            raise CohortError(
                f"{where}: unknown target '{name}' under 'targets'; known: {', '.join(mapping_keys())}"
            )
    clinical_raw = raw.get("clinical") or {}
    ranges = {**HUMAN_RANGES, **{k: tuple(v) for k, v in (clinical_raw.get("ranges") or {}).items()}}
    clinical = ClinicalSpec(
        binary=tuple(clinical_raw.get("binary") or ()),
        categorical={k: tuple(v) for k, v in (clinical_raw.get("categorical") or {}).items()},
        continuous=tuple(clinical_raw.get("continuous") or ()),
        ranges=ranges,
    )
    split = raw.get("split")
    if split is not None and (not isinstance(split, dict) or not {"column", "train", "val", "test"} <= set(split)):
        raise CohortError(f"{where}: 'split' must give column, train, val and test values, "
                          "e.g. {column: strat_fold, train: [1, 2, 3, 4, 5, 6, 7, 8], val: [9], test: [10]}")
    return CohortMapping(
        name=str(raw.get("name", path.stem)),
        root=root,
        table=(root / _require(raw, "table", where)).resolve(),
        id_column=str(_require(raw, "id_column", where)),
        sex_column=str(sex["column"]),
        male_code=sex["male"],
        female_code=sex["female"],
        ecg_format=ecg.get("format"),
        ecg_options=dict(ecg.get("options") or {}),
        ecg_column=ecg.get("column"),
        ecg_dir=(root / ecg["dir"]).resolve() if ecg.get("dir") else None,
        ecg_pattern=ecg.get("pattern"),
        targets=targets,
        clinical=clinical,
        source=path.resolve(),
        split=split,
        group_column=raw.get("group"),
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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.exclusions.to_csv(path, index=False)
        return path


def read_table(path: Path) -> pd.DataFrame:
    """Read a cohort table from Parquet or CSV."""
    if not path.exists():
        raise CohortError(f"cohort table {path} not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    raise CohortError(f"cohort table {path}: unsupported suffix {path.suffix!r}; use .parquet or .csv")


def _resolve_ecg_paths(mapping: CohortMapping, table: pd.DataFrame, ids: pd.Series) -> pd.Series:
    if mapping.ecg_column:
        if mapping.ecg_column not in table.columns:
            raise CohortError(f"{mapping.source}: ECG column '{mapping.ecg_column}' not in table {mapping.table}")
        return table[mapping.ecg_column].map(
            lambda p: str((mapping.root / str(p)).resolve()) if isinstance(p, str) and p else ""
        )
    if mapping.ecg_dir and mapping.ecg_pattern:
        return ids.map(lambda i: str(mapping.ecg_dir / mapping.ecg_pattern.format(id=i)))
    return pd.Series([""] * len(table), index=table.index)


def derive_lvh(frame: pd.DataFrame, spec_mass: TargetSpec) -> pd.Series:
    """LVH label from a (indexed) mass column by the sex-specific cut-offs of ``spec_mass``."""
    assert spec_mass.lvh_thresholds is not None
    values = frame[spec_mass.outputs[0]].to_numpy(dtype=float)
    labels = spec_mass.lvh_thresholds.classify(values, frame[IS_MALE].to_numpy())
    return pd.Series(np.where(np.isfinite(values), labels, np.nan), index=frame.index)


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
    table = read_table(mapping.table)
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

    ids = table[mapping.id_column].astype(str).str.strip()
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        rows = ", ".join(f"row {i + 2} (id {v})" for i, v in duplicated.head(20).items())
        raise CohortError(f"{where}: duplicate participant ids in column '{mapping.id_column}': {rows}. "
                          "Remove or merge the duplicates.")

    frame = pd.DataFrame({ID: ids})
    reasons: list[tuple[int, str, str]] = []

    sex_raw = table[mapping.sex_column]
    is_male = pd.Series(np.nan, index=table.index)
    sex_keys = sex_raw.map(level_key)
    is_male[sex_keys == level_key(mapping.male_code)] = 1
    is_male[sex_keys == level_key(mapping.female_code)] = 0
    for i in table.index[is_male.isna()]:
        reasons.append((i, ids[i], f"unknown sex code {sex_raw[i]} in column '{mapping.sex_column}' "
                        f"(expected {mapping.male_code!r} or {mapping.female_code!r})"))
    frame[IS_MALE] = is_male
    frame[ECG_PATH] = _resolve_ecg_paths(mapping, table, ids)
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
    if "LVH" not in frame:
        for source in ("INDEXED_MASS", "MASS"):
            if source in frame:
                frame["LVH"] = derive_lvh(frame, target_spec(source))
                break
    for name in required_targets:
        values = frame[name]
        spec = mapping_keys().get(name)
        low, high = spec.output_range(name) if spec is not None and spec.is_regression else (-np.inf, np.inf)
        for i in table.index[values.isna()]:
            reasons.append((i, ids[i], f"missing {name} (column '{mapping.targets.get(name, name)}')"))
        bad = values.notna() & ((values < low) | (values > high))
        for i in table.index[bad]:
            reasons.append((i, ids[i], f"impossible {name} value {values[i]} (expected {low}-{high})"))

    for column in mapping.clinical.columns:
        frame[column] = table[column]
    for column in mapping.clinical.continuous:
        values = pd.to_numeric(table[column], errors="coerce")
        frame[column] = values
        if column in mapping.clinical.ranges:
            low, high = mapping.clinical.ranges[column]
            for i in table.index[values.notna() & ((values < low) | (values > high))]:
                reasons.append((i, ids[i], f"clinical value {column}={values[i]} outside human range {low}-{high}"))

    exclusions = pd.DataFrame(reasons, columns=["row", ID, "reason"])
    if len(exclusions):
        exclusions = exclusions.groupby(["row", ID], as_index=False)["reason"].agg("; ".join)
        exclusions["row"] = exclusions["row"] + 2  # 1-based, after the header line, as a spreadsheet shows it
    kept = frame.drop(index=sorted({r for r, _, _ in reasons})).reset_index(drop=True)
    kept[IS_MALE] = kept[IS_MALE].astype(np.int64)
    return Cohort(mapping=mapping, frame=kept, exclusions=exclusions)


def ecg_records(path: str | Path) -> pd.DataFrame:
    """Every (id, ecg_path, format) of a cohort's table, before any row validation.

    ``prepare`` processes all ECGs a cohort names; which participants a run uses is decided later.
    """
    mapping = load_mapping(path)
    table = read_table(mapping.table)
    if mapping.id_column not in table.columns:
        raise CohortError(f"cohort table {mapping.table}: id column '{mapping.id_column}' not found")
    ids = table[mapping.id_column].astype(str).str.strip()
    if ids.duplicated().any():
        raise CohortError(f"cohort table {mapping.table}: duplicate ids {sorted(set(ids[ids.duplicated()]))[:10]}")
    frame = pd.DataFrame({ID: ids, ECG_PATH: _resolve_ecg_paths(mapping, table, ids)})
    frame["format"] = mapping.ecg_format
    frame["options"] = [mapping.ecg_options] * len(frame)
    return frame
