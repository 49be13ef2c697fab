"""The cohort YAML's schema: every key checked before anything is read, and what a YAML may expand to capped.

A wrong key is named with what it should be and what it is (``'targets' must be a mapping, e.g. {INDEXED_MASS:
ilvm, LVH: lvh}, got ['ilvm'] (list)``); an unknown ``format`` is checked against :func:`aiecg.io.list_readers`
and reader ``options`` against the reader function's signature. YAML aliases are followed when counting what a
file expands to, so a kilobyte "billion laughs" file is refused before it is built.
"""

from __future__ import annotations

import inspect
import math
import string
from pathlib import Path
from typing import Any

import yaml

from aiecg.errors import CohortError

MAX_YAML_BYTES = 1_000_000
MAX_YAML_NODES = 100_000
"""A cohort YAML may be at most this large, and expand (aliases followed) to at most this many nodes."""


def _require(mapping: dict, key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise CohortError(f"{where}: missing required key '{key}'")
    return mapping[key]


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes of a composed YAML document with every alias expanded (memoised, so a bomb costs nothing)."""
    key = id(node)
    if key not in memo:
        memo[key] = 1  # a recursive alias counts once
        if isinstance(node, yaml.SequenceNode):
            memo[key] = 1 + sum(_expanded_nodes(child, memo) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    return memo[key]


def load_yaml(path: Path) -> Any:
    """Safely load a small YAML file: at most :data:`MAX_YAML_BYTES`, expanding to :data:`MAX_YAML_NODES`.

    Raises:
        CohortError: the file is missing, too large, an alias bomb or not valid YAML.
    """
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise CohortError(f"{path}: {size:,} bytes is too large for a cohort YAML (at most {MAX_YAML_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CohortError(f"cohort file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CohortError(f"cohort file {path} cannot be read ({exc})") from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # refuses control characters already (yaml.reader.ReaderError)
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = _expanded_nodes(node, {})
        if nodes > MAX_YAML_NODES:
            raise CohortError(f"{path}: the YAML expands to {nodes:,} values through its aliases (at most "
                              f"{MAX_YAML_NODES:,}); write the values out instead of nesting aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise CohortError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None  # one line
    except RecursionError:
        raise CohortError(f"{path}: the YAML is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


_TOP_KEYS = ("name", "table", "id_column", "sex", "ecg", "targets", "clinical", "split", "group")
_ECG_KEYS = ("column", "dir", "pattern", "format", "options")
_CLINICAL_KEYS = ("binary", "categorical", "continuous", "ranges")


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({type(value).__name__})"


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_name(value: Any) -> bool:
    """A column name: text, or an integer (a header such as 2020)."""
    return _is_text(value) or (isinstance(value, int) and not isinstance(value, bool))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


class _Checker:
    """Checks one YAML key after another; every error names the key, what it should be and what it is."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, expected: str, value: Any) -> None:
        raise CohortError(f"{self.where}: '{key}' must be {expected}, got {_show(value)}")

    def mapping(self, raw: dict, key: str, allowed: tuple[str, ...] | None = None, example: str = "") -> dict:
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"a mapping{', e.g. ' + example if example else ''}", value)
        if allowed is not None:
            unknown = [k for k in value if k not in allowed]
            if unknown:
                raise CohortError(f"{self.where}: unknown key(s) {unknown} under '{key}'; "
                                  f"allowed: {', '.join(allowed)}")
        return value

    def names(self, raw: dict, key: str, label: str) -> None:
        value = raw.get(key)
        if value is not None and (not isinstance(value, list) or not all(_is_name(v) for v in value)):
            self.fail(label, "a list of column names, e.g. [sex, diabetes]", value)


def _check_pattern(where: str, pattern: Any) -> None:
    if not _is_text(pattern):
        raise CohortError(f"{where}: 'ecg.pattern' must be a file-name pattern such as '{{id}}.xml', "
                          f"got {_show(pattern)}")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        raise CohortError(f"{where}: 'ecg.pattern' {pattern!r} is not a valid pattern ({exc}); use {{id}} for the "
                          "participant id, e.g. '{id}_20205_2_0.xml'") from None
    if fields != ["id"] * len(fields) or not fields:
        raise CohortError(f"{where}: 'ecg.pattern' {pattern!r} must hold {{id}} (and no other field), e.g. "
                          "'{id}_20205_2_0.xml'")


def check_reader_options(where: str, fmt: str | None, options: dict[str, Any]) -> None:
    """Refuse an unknown ``format`` or options the reader's function does not take."""
    from aiecg.io import get_reader, list_readers

    if fmt is not None and fmt not in list_readers():
        raise CohortError(f"{where}: 'ecg.format' {fmt!r} is not a known format; known: {', '.join(list_readers())}")
    readers = [get_reader(fmt)] if fmt else [get_reader(name) for name in list_readers()]
    accepted: set[str] = set()
    for reader in readers:
        parameters = list(inspect.signature(reader.read).parameters.values())[1:]
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return
        accepted |= {p.name for p in parameters}
    unknown = sorted(set(options) - accepted)
    if unknown:
        which = f"the {fmt} reader" if fmt else "any reader"
        raise CohortError(f"{where}: 'ecg.options' {unknown} are not options of {which}; it takes: "
                          f"{', '.join(sorted(accepted)) or 'none'}")


def validate_mapping(raw: Any, where: str) -> None:
    """Check a parsed cohort YAML against the schema in this module's docstring.

    Raises:
        CohortError: naming the first wrong key, what it should be and what it is.
    """
    if not isinstance(raw, dict):
        raise CohortError(f"{where}: expected a mapping of keys (name, table, id_column, ...), got {_show(raw)}")
    unknown = [k for k in raw if k not in _TOP_KEYS]
    if unknown:
        raise CohortError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(_TOP_KEYS)}")
    check = _Checker(where)
    if "name" in raw and not _is_scalar(raw["name"]):
        check.fail("name", "text", raw["name"])
    if not _is_text(_require(raw, "table", where)):
        check.fail("table", "the table's file name, e.g. cohort.csv", raw["table"])
    if not _is_name(_require(raw, "id_column", where)):
        check.fail("id_column", "a column name", raw["id_column"])
    sex = _require(raw, "sex", where)
    if not isinstance(sex, dict) or not {"column", "male", "female"} <= set(sex):
        raise CohortError(
            f"{where}: 'sex' must give column, male and female codes, e.g. {{column: sex, male: 1, female: 0}}"
        )
    if not _is_name(sex["column"]):
        check.fail("sex.column", "a column name", sex["column"])
    for code in ("male", "female"):
        if not _is_scalar(sex[code]):
            check.fail(f"sex.{code}", "one code (a number or text)", sex[code])
    ecg = check.mapping(raw, "ecg", _ECG_KEYS, "{column: ecg_file, format: cardiosoft}")
    if "column" in ecg and not _is_name(ecg["column"]):
        check.fail("ecg.column", "a column name", ecg["column"])
    if "dir" in ecg and not _is_text(ecg["dir"]):
        check.fail("ecg.dir", "a folder path", ecg["dir"])
    if "pattern" in ecg:
        _check_pattern(where, ecg["pattern"])
        if "dir" not in ecg:
            raise CohortError(f"{where}: 'ecg.pattern' needs 'ecg.dir', the folder the pattern names files in")
    if "format" in ecg and not _is_text(ecg["format"]):
        check.fail("ecg.format", "a format name", ecg["format"])
    options = check.mapping(ecg, "options", example="{variable: H12, fs: 500}")
    if not all(isinstance(k, str) for k in options):
        raise CohortError(f"{where}: 'ecg.options' keys must be option names, got {list(options)}")
    check_reader_options(where, ecg.get("format"), options)
    targets = check.mapping(raw, "targets", example="{INDEXED_MASS: ilvm, LVH: lvh}")
    for name, column in targets.items():
        if not _is_name(column):
            check.fail(f"targets.{name}", "a column name", column)
    clinical = check.mapping(raw, "clinical", _CLINICAL_KEYS, "{binary: [sex], continuous: [age]}")
    check.names(clinical, "binary", "clinical.binary")
    check.names(clinical, "continuous", "clinical.continuous")
    categorical = check.mapping(clinical, "categorical", example="{smoking: [0, 1, 2]}")
    for column, levels in categorical.items():
        if not isinstance(levels, list) or not levels or not all(_is_scalar(v) for v in levels):
            check.fail(f"clinical.categorical.{column}", "a list of levels, e.g. [0, 1, 2]", levels)
    ranges = check.mapping(clinical, "ranges", example="{sbp: [50, 300]}")
    for column, bounds in ranges.items():
        ok = (isinstance(bounds, list) and len(bounds) == 2
              and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
              and bounds[0] < bounds[1])
        if not ok:
            check.fail(f"clinical.ranges.{column}", "[low, high] with low < high, e.g. [50, 300]", bounds)
    split = raw.get("split")
    if split is not None:
        if not isinstance(split, dict) or not {"column", "train", "val", "test"} <= set(split):
            raise CohortError(f"{where}: 'split' must give column, train, val and test values, "
                              "e.g. {column: strat_fold, train: [1, 2, 3, 4, 5, 6, 7, 8], val: [9], test: [10]}")
        for name in ("train", "val", "test"):
            if not isinstance(split[name], list) or not all(_is_scalar(v) for v in split[name]):
                check.fail(f"split.{name}", "a list of values of the split column, e.g. [9]", split[name])
    if raw.get("group") is not None and not _is_name(raw["group"]):
        check.fail("group", "a column name", raw["group"])
