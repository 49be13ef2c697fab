"""Adapters that turn public ECG data sets into aiecg cohorts: a table plus a cohort YAML in one folder.

Everything after the adapter (``aiecg prepare``, ``train``, ``evaluate``) runs unchanged on what it writes.

* PTB-XL (Wagner et al. 2020, "PTB-XL, a large publicly available electrocardiography dataset", Scientific
  Data 7:154): ``ptbxl_database.csv`` -> LVH from the SCP statement ``LVH`` and its likelihood, age, sex,
  height, weight, BMI and body-surface area, and the recommended folds (``strat_fold`` 1-8 train, 9 validation,
  10 test) as the YAML's predefined ``split``.
* A folder of WFDB records in the PhysioNet/CinC Challenge 2021 style (Reyna et al. 2021, "Will two do?
  Varying dimensions in electrocardiography: the PhysioNet/Computing in Cardiology Challenge 2021", Computing
  in Cardiology 48): ``# Age:``, ``# Sex:`` and ``# Dx:`` (SNOMED-CT codes) header comments, read from the
  headers alone. Georgia, Chapman-Shaoxing, Ningbo, CPSC, St Petersburg and the challenge's PTB/PTB-XL copies
  need no code, only this adapter.

Both write the same kinds of file: the table (``cohort.csv`` or ``cohort.parquet``), ``cohort.yaml``, and
``excluded.csv`` (every record left out of the table, with the reason), so no record disappears silently.
The tables code sex as 1 = male, 0 = female (the UK Biobank convention of the rest of aiecg), so a model
trained on one cohort reads the ``sex`` variable of another the same way.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from aiecg.conventions import SNOMED_LVH, sex_or_unknown
from aiecg.csvfile import write_csv
from aiecg.data.cohort import HUMAN_RANGES
from aiecg.errors import CohortError

log = logging.getLogger("aiecg")

"""SNOMED-CT concept 'left ventricular hypertrophy' as used in the PhysioNet/CinC 2020/2021 challenges."""

PTBXL_LVH = "LVH"
"""PTB-XL's SCP-ECG statement for left ventricular hypertrophy (``scp_statements.csv``)."""

PTBXL_FOLDS: dict[str, tuple[int, ...]] = {"train": (1, 2, 3, 4, 5, 6, 7, 8), "val": (9,), "test": (10,)}
"""The split Wagner et al. recommend: folds are patient-disjoint, and 9 and 10 hold only human-validated labels."""

PTBXL_AGE_ANONYMISED = 300
PTBXL_AGE_CAPPED = 90.0
"""PTB-XL 1.0.0/1.0.1 code ages above 89 as 300 (anonymisation); we set them to 90, the bound they stand for."""

EXCLUDED_COLUMNS = ["id", "reason"]



@dataclass(frozen=True)
class PublicCohort:
    """What an adapter wrote, and how many records it kept.

    Attributes:
        name: the cohort's name (as in its YAML).
        cohort_yaml: the cohort YAML to pass to ``aiecg prepare/train/evaluate --cohort``.
        table: the cohort table beside it.
        excluded: ``excluded.csv``: id and reason of every record left out of the table.
        n_records: rows in the table.
        n_lvh: rows labelled LVH.
        n_excluded: rows of ``excluded.csv``.
        cleaned: for PTB-XL, ``cleaned.csv``: values set to missing (id, column, value, reason); else None.
    """

    name: str
    cohort_yaml: Path
    table: Path
    excluded: Path
    n_records: int
    n_lvh: int
    n_excluded: int
    cleaned: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cohort_yaml": str(self.cohort_yaml), "table": str(self.table),
                "excluded": str(self.excluded), "n_records": self.n_records, "n_lvh": self.n_lvh,
                "n_excluded": self.n_excluded, "cleaned": str(self.cleaned) if self.cleaned else None}


# ----------------------------------------------------------------------------------------------------- helpers

def body_surface_area(height_cm: Any, weight_kg: Any) -> np.ndarray:
    """Body-surface area in m² by Mosteller's formula, sqrt(height cm x weight kg / 3600); NaN where unknown."""
    height = np.asarray(height_cm, dtype=float)
    weight = np.asarray(weight_kg, dtype=float)
    return np.sqrt(height * weight / 3600.0)


def _write_outputs(out: Path, name: str, table: pd.DataFrame, excluded: pd.DataFrame, mapping: dict[str, Any],
                   header: str, table_format: str) -> tuple[Path, Path, Path]:
    if table_format not in ("csv", "parquet"):
        raise ValueError(f"table_format must be 'csv' or 'parquet', got {table_format!r}")
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / f"cohort.{table_format}"
    if table_format == "csv":
        table.to_csv(table_path, index=False)
    else:
        table.to_parquet(table_path, index=False)
    excluded_path = out / "excluded.csv"
    write_csv(excluded.reindex(columns=EXCLUDED_COLUMNS), excluded_path)
    yaml_path = out / "cohort.yaml"
    body = yaml.safe_dump({"name": name, "table": table_path.name, **mapping}, sort_keys=False,
                          default_flow_style=None, width=120)
    yaml_path.write_text(header + body)
    return yaml_path, table_path, excluded_path


# ------------------------------------------------------------------------------------------------------ PTB-XL

MAX_SCP_CODES_CHARS = 2000
"""The longest ``scp_codes`` cell accepted (PTB-XL's longest holds about 150 characters)."""

_SCP_ITEM = re.compile(r"""\s*(['"])([^'"]{1,64})\1\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(,|\})""")


def parse_scp_codes(text: Any, record: Any = "?") -> dict[str, float]:
    """PTB-XL's ``scp_codes`` cell (a Python dict literal, statement -> likelihood 0-100) as a dict.

    Parsed by a small grammar of its own (``{'CODE': number, ...}``) after a length cap, so a hostile cell costs
    neither memory nor time and nothing in it is ever evaluated.

    Raises:
        CohortError: the cell is too long or not a dict literal of statement -> number.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)) or str(text).strip() == "":
        return {}
    text = str(text)
    if len(text) > MAX_SCP_CODES_CHARS:
        raise CohortError(f"ptbxl_database.csv: ecg_id {record}: scp_codes cell of {len(text):,} characters is longer "
                          f"than any real one (at most {MAX_SCP_CODES_CHARS:,}); is the file damaged?")
    body = text.strip()
    codes: dict[str, float] = {}
    position = 1
    ok = body.startswith("{") and body.endswith("}")
    if ok and body[1:-1].strip():
        while ok:
            match = _SCP_ITEM.match(body, position)
            if match is None:
                ok = body[position:].strip() == "}" and position > 1  # a trailing comma
                break
            codes[match.group(2)] = float(match.group(3))
            position = match.end()
            if match.group(4) == "}":
                ok = position == len(body)
                break
    if not ok:
        raise CohortError(f"ptbxl_database.csv: ecg_id {record}: scp_codes {text[:80]!r} does not map statements "
                          "to likelihoods like {'LVH': 100.0, 'SR': 0.0}")
    return codes


def ptbxl_lvh_label(codes: dict[str, float], threshold: float = 0.0, below_threshold: str = "negative",
                    code: str = PTBXL_LVH) -> float:
    """1.0 where ``code`` is stated with likelihood >= ``threshold``, 0.0 where it is absent; a statement below
    the threshold counts as 0.0 (``below_threshold='negative'``) or NaN (``'exclude'``: the loader then leaves
    the record out of LVH runs, with the reason)."""
    if below_threshold not in ("negative", "exclude"):
        raise ValueError(f"below_threshold must be 'negative' or 'exclude', got {below_threshold!r}")
    if code not in codes:
        return 0.0
    if codes[code] >= threshold:
        return 1.0
    return 0.0 if below_threshold == "negative" else float("nan")


def _ptbxl_record_files(root: Path, filename: str, rate: int) -> tuple[Path, str]:
    """The header of a PTB-XL record, in the official layout (``records500/00000/00001_hr``) or flat
    (``records500/00001_hr`` or ``00001_hr`` directly under ``root``), and '' or why it is absent."""
    stem = Path(filename).name
    candidates = (root / filename, root / f"records{rate}" / stem, root / stem)
    for candidate in candidates:
        header = candidate.parent / f"{stem}.hea"
        if header.exists():
            if (candidate.parent / f"{stem}.dat").exists():
                return header, ""
            return header, f"signal file {stem}.dat missing beside {header}"
    return root / f"{filename}.hea", f"record {filename} not found under {root} (nor flat in records{rate}/)"


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (POSIX separators), so a cohort folder and its data can move together and
    no machine's absolute path is written into a table or YAML."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def ptbxl_mapping(use_folds: bool = True) -> dict[str, Any]:
    """The cohort-YAML keys (all but name and table) of a table written by :func:`build_ptbxl_cohort`."""
    mapping: dict[str, Any] = {
        "id_column": "ecg_id",
        "group": "patient_id",
        "sex": {"column": "sex", "male": 1, "female": 0},
        "ecg": {"column": "ecg_file", "format": "wfdb"},
        "targets": {"LVH": "lvh"},
        "clinical": {"binary": ["sex"], "continuous": ["age", "height", "weight", "bmi", "bsa"]},
    }
    if use_folds:
        mapping["split"] = {"column": "strat_fold", **{k: list(v) for k, v in PTBXL_FOLDS.items()}}
    return mapping


def build_ptbxl_cohort(
    root: str | Path,
    out: str | Path,
    rate: int = 500,
    lvh_threshold: float = 0.0,
    below_threshold: str = "negative",
    only_present: bool = True,
    use_folds: bool = True,
    table_format: str = "csv",
    name: str = "ptbxl",
) -> PublicCohort:
    """Write a PTB-XL cohort (table, ``cohort.yaml``, ``excluded.csv``, ``cleaned.csv``) to ``out``.

    Args:
        root: the PTB-XL folder holding ``ptbxl_database.csv`` and ``records500/``/``records100/`` (the official
            nested layout or a flat folder of ``NNNNN_hr.hea/.dat`` records).
        out: the output folder.
        rate: 500 (``filename_hr``) or 100 Hz (``filename_lr``).
        lvh_threshold: the least likelihood (0-100) of the ``LVH`` statement that makes a case. The default 0
            counts every LVH statement (2,137 of 21,837 records in PTB-XL 1.0.3), as the PTB-XL example code and
            benchmarks do; the lower likelihoods (15, 35) come from hedged reports ("voltages suggesting LVH"),
            so calling them negatives would put voltage-positive ECGs among the controls. 50 keeps 1,756.
        below_threshold: what an LVH statement below the threshold means: 'negative' or 'exclude'.
        only_present: keep only records whose header and signal files exist (for a partial download); the others
            go to ``excluded.csv`` with the reason. With False every record stays in the table and ``prepare``
            reports the missing files in the store.
        use_folds: write the recommended folds as the YAML's predefined split. False leaves the split to the
            run's seeded 70/15/15 split, made by patient (the YAML's ``group: patient_id``), so one patient's ECGs
            stay in one split.
        table_format: 'csv' or 'parquet'.
        name: the cohort's name.

    Raises:
        CohortError: ``ptbxl_database.csv`` is missing, lacks a column, or holds a malformed ``scp_codes`` cell.
    """
    root, out = Path(root), Path(out)
    if rate not in (500, 100):
        raise ValueError(f"rate must be 500 or 100 (Hz), got {rate}")
    database = root / "ptbxl_database.csv"
    if not database.exists():
        raise CohortError(f"{database} not found; --root must be the PTB-XL folder holding ptbxl_database.csv")
    meta = pd.read_csv(database)
    file_column = "filename_hr" if rate == 500 else "filename_lr"
    required = ["ecg_id", "patient_id", "age", "sex", "height", "weight", "scp_codes", "strat_fold", file_column]
    missing = [c for c in required if c not in meta.columns]
    if missing:
        raise CohortError(f"{database}: columns {missing} missing; is this PTB-XL's ptbxl_database.csv?")

    codes = [parse_scp_codes(text, record) for text, record in zip(meta["scp_codes"], meta["ecg_id"])]
    age = pd.to_numeric(meta["age"], errors="coerce")
    capped = age == PTBXL_AGE_ANONYMISED
    table = pd.DataFrame({
        "ecg_id": meta["ecg_id"].astype(int),
        "patient_id": pd.to_numeric(meta["patient_id"], errors="coerce").astype("Int64"),
        "age": age.where(~capped, PTBXL_AGE_CAPPED),
        "age_capped": capped.astype(int),
        # PTB-XL codes sex 0 = male, 1 = female (Wagner et al. 2020); we write 1 = male, 0 = female
        "sex": meta["sex"].map({0: 1, 1: 0}).astype("Int64"),
        "height": pd.to_numeric(meta["height"], errors="coerce"),
        "weight": pd.to_numeric(meta["weight"], errors="coerce"),
    })
    cleaned = []
    for column in ("height", "weight"):
        low, high = HUMAN_RANGES[column]
        bad = table[column].notna() & ((table[column] < low) | (table[column] > high))
        for i in table.index[bad]:
            cleaned.append((table.at[i, "ecg_id"], column, table.at[i, column],
                            f"outside human range {low}-{high}; set to missing (the encoder imputes it)"))
        table.loc[bad, column] = np.nan
    table["bmi"] = table["weight"] / (table["height"] / 100.0) ** 2
    table["bsa"] = body_surface_area(table["height"], table["weight"])
    table["lvh"] = [ptbxl_lvh_label(c, lvh_threshold, below_threshold) for c in codes]
    table["lvh_likelihood"] = [c.get(PTBXL_LVH, np.nan) for c in codes]
    table["strat_fold"] = meta["strat_fold"].astype(int)
    table["scp_codes"] = meta["scp_codes"]
    located = [_ptbxl_record_files(root, str(f), rate) for f in meta[file_column]]
    table["ecg_file"] = [_relative(path, root) for path, _ in located]
    absent = np.asarray([bool(reason) for _, reason in located])

    excluded = pd.DataFrame(columns=EXCLUDED_COLUMNS)
    sex_unknown = table["sex"].isna().to_numpy()
    reasons = [(table.at[i, "ecg_id"], f"unknown sex code {meta.at[i, 'sex']} (PTB-XL: 0 male, 1 female)")
               for i in np.flatnonzero(sex_unknown)]
    drop = sex_unknown.copy()
    if only_present:
        reasons += [(table.at[i, "ecg_id"], located[i][1]) for i in np.flatnonzero(absent & ~sex_unknown)]
        drop |= absent
    if reasons:
        excluded = pd.DataFrame(reasons, columns=EXCLUDED_COLUMNS).sort_values("id", kind="stable")
    table = table.loc[~drop].reset_index(drop=True)
    table["sex"] = table["sex"].astype(int)
    if use_folds and len(table):
        empty = [split for split, folds in PTBXL_FOLDS.items() if not table["strat_fold"].isin(folds).any()]
        if empty:
            log.warning("PTB-XL: the records present leave the predefined %s split(s) empty; build the cohort "
                        "with use_folds=False (--seeded-split) to use the seeded 70/15/15 split", empty)

    rule = (f"likelihood >= {lvh_threshold:g}" + (" (any LVH statement)" if lvh_threshold <= 0 else "")
            + f"; below it: {below_threshold}")
    header = (f"# PTB-XL (Wagner et al. 2020, Scientific Data 7:154) as an aiecg cohort; written by\n"
              f"# aiecg cohort ptbxl ({rate} Hz records); ECG paths are relative to ecg.dir, the PTB-XL folder.\n"
              f"# lvh: SCP statement 'LVH' with {rule}.\n"
              f"# sex: 1 male, 0 female (PTB-XL's 0 male / 1 female recoded). Age 300 (>89, anonymised) -> 90.\n"
              f"# height/weight outside human range are set to missing (cleaned.csv); bmi and bsa (Mosteller)\n"
              f"# where both are known. Records left out of the table: excluded.csv.\n")
    mapping = ptbxl_mapping(use_folds)
    mapping["ecg"]["dir"] = _relative(root, out)
    yaml_path, table_path, excluded_path = _write_outputs(out, name, table, excluded, mapping, header, table_format)
    cleaned_path = out / "cleaned.csv"
    write_csv(pd.DataFrame(cleaned, columns=["id", "column", "value", "reason"]), cleaned_path)
    return PublicCohort(name, yaml_path, table_path, excluded_path, n_records=len(table),
                        n_lvh=int(np.nansum(table["lvh"])), n_excluded=len(excluded), cleaned=cleaned_path)


# ------------------------------------------------------------------------------- WFDB folder (PhysioNet/CinC)

_COMMENT = re.compile(r"^\s*#?\s*([A-Za-z][\w ]*?)\s*:\s*(.*?)\s*$")


def parse_header_comments(comments: list[str]) -> dict[str, str]:
    """``key: value`` comment lines of a WFDB header as a dict with lower-case keys (first occurrence wins)."""
    fields: dict[str, str] = {}
    for line in comments:
        match = _COMMENT.match(line)
        if match:
            fields.setdefault(match.group(1).strip().lower(), match.group(2))
    return fields


def parse_age(text: str | None) -> float:
    """Age in years, or NaN for 'NaN', 'Unknown', '' or a negative number."""
    try:
        age = float(str(text).strip())
    except (TypeError, ValueError):
        return float("nan")
    return age if math.isfinite(age) and age >= 0 else float("nan")


def parse_sex(text: str | None) -> int | None:
    """1 for male, 0 for female, None when unknown."""
    sex = sex_or_unknown(text)
    return 1 if sex == "male" else 0 if sex == "female" else None


def parse_dx(text: str | None) -> tuple[str, ...]:
    """The diagnosis codes of a ``Dx`` comment (comma-separated SNOMED-CT codes)."""
    return tuple(code.strip() for code in str(text or "").split(",") if code.strip())


def wfdb_folder_mapping() -> dict[str, Any]:
    """The cohort-YAML keys (all but name and table) of a table written by :func:`build_wfdb_folder_cohort`."""
    return {
        "id_column": "record",
        "sex": {"column": "sex", "male": 1, "female": 0},
        "ecg": {"column": "ecg_file", "format": "wfdb"},
        "targets": {"LVH": "lvh"},
        "clinical": {"binary": ["sex"], "continuous": ["age"]},
    }


def build_wfdb_folder_cohort(
    folder: str | Path,
    out: str | Path,
    lvh_codes: tuple[str, ...] = (SNOMED_LVH,),
    recursive: bool = True,
    table_format: str = "csv",
    name: str | None = None,
) -> PublicCohort:
    """Write a cohort of the WFDB records in ``folder`` from their headers alone (``wfdb.rdheader``).

    Each header's ``# Age:``, ``# Sex:`` and ``# Dx:`` comments give age (NaN when 'NaN'/'Unknown'), sex
    (Male 1, Female 0) and the LVH label (1 when any of ``lvh_codes`` is among the Dx codes). Records with an
    unreadable header, a missing signal file, an unknown sex or no Dx line go to ``excluded.csv`` with the
    reason. There is no predefined split: runs use their seeded, LVH-stratified 70/15/15 split.

    Args:
        folder: a folder of ``.hea`` files with their ``.mat``/``.dat`` signals (searched recursively by default).
        out: the output folder.
        lvh_codes: SNOMED-CT (or other) codes that mean LVH in this data set.
        recursive: also read the sub-folders (the challenge's ``training/<database>/gN/`` layout).
        table_format: 'csv' or 'parquet'.
        name: the cohort's name (default: the folder's name).

    Raises:
        CohortError: no headers in ``folder``, or two headers share a record name.
    """
    import wfdb

    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise CohortError(f"WFDB folder {folder} not found")
    headers = sorted(folder.rglob("*.hea") if recursive else folder.glob("*.hea"))
    if not headers:
        raise CohortError(f"no WFDB headers (*.hea) in {folder}" + ("" if recursive else " (not recursive)"))
    names = pd.Series([h.stem for h in headers])
    if names.duplicated().any():
        twice = sorted(set(names[names.duplicated()]))[:10]
        raise CohortError(f"{folder}: record names {twice} occur in more than one sub-folder; "
                          "build one cohort per sub-folder or rename them")
    codes = {str(c).strip() for c in lvh_codes}
    rows, excluded = [], []
    for header in headers:
        record = header.stem
        try:
            head = wfdb.rdheader(str(header.with_suffix("")))
        except Exception as exc:  # wfdb raises bare ValueError/IndexError on malformed headers
            excluded.append((record, f"unreadable header {header}: {type(exc).__name__}: {exc}"))
            continue
        signal_files = sorted(set(head.file_name or []))
        absent = [f for f in signal_files if not (header.parent / f).exists()]
        if absent or not signal_files:
            excluded.append((record, f"signal file(s) {absent or 'none named'} missing beside {header}"))
            continue
        fields = parse_header_comments(head.comments or [])
        sex = parse_sex(fields.get("sex"))
        if sex is None:
            excluded.append((record, f"unknown sex {fields.get('sex', '(no Sex line)')!r} in {header.name}"))
            continue
        if "dx" not in fields:
            excluded.append((record, f"no '# Dx:' line in {header.name}, so the LVH label is unknown"))
            continue
        dx = parse_dx(fields["dx"])
        rows.append({
            "record": record, "age": parse_age(fields.get("age")), "sex": sex, "lvh": int(bool(codes & set(dx))),
            "dx": ",".join(dx), "fs": float(head.fs or np.nan), "n_samples": int(head.sig_len or 0),
            "subfolder": header.parent.relative_to(folder).as_posix(), "ecg_file": _relative(header, folder),
        })
    columns = ["record", "age", "sex", "lvh", "dx", "fs", "n_samples", "subfolder", "ecg_file"]
    table = pd.DataFrame(rows, columns=columns)
    name = name or folder.resolve().name
    header_text = (f"# WFDB records of the folder {name} as an aiecg cohort (PhysioNet/CinC Challenge 2021 header\n"
                   f"# style, Reyna et al. 2021); written by aiecg cohort wfdb-folder from the headers' comments.\n"
                   f"# lvh: any of the Dx codes {sorted(codes)}; sex: Male 1, Female 0; age 'NaN'/'Unknown' ->\n"
                   f"# missing (the encoder imputes it). No predefined split: runs use the seeded 70/15/15 split.\n"
                   f"# Records left out of the table: excluded.csv.\n")
    mapping = wfdb_folder_mapping()
    mapping["ecg"]["dir"] = _relative(folder, out)
    yaml_path, table_path, excluded_path = _write_outputs(
        out, name, table, pd.DataFrame(excluded, columns=EXCLUDED_COLUMNS), mapping, header_text, table_format)
    return PublicCohort(name, yaml_path, table_path, excluded_path, n_records=len(table),
                        n_lvh=int(table["lvh"].sum()), n_excluded=len(excluded))
