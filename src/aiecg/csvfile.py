"""THE CSV writer (and its reader) for every table aiecg writes: predictions, measurements, beats, results,
comparisons, exclusions, store errors and the report's tables.

Ids, file names and reasons come from users' files and go into cells that a spreadsheet may open. A cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by Excel, LibreOffice and
Google Sheets (``=HYPERLINK(...)``, ``+cmd|' /C calc'!A0``, ``@SUM(...)``): CSV formula injection. The OWASP
rule neutralises such a text cell by prefixing a single quote, which a spreadsheet shows as text.

The rule here, applied to text cells and to column names:

- a text cell that starts with one of those characters gets a ``'`` in front, unless it is a plain number
  (``-1.5``, ``+44``, ``1e-3``), which a spreadsheet reads as a number, never as a formula;
- a text cell that already starts with ``'`` gets one more in front, so the rule can be undone exactly;
- numbers (int, float, bool columns and numeric cells) are written as they are.

The exact value is recoverable: a text cell that starts with ``'`` lost nothing but that first character; drop
it. :func:`read_csv` does so (``pandas.read_csv`` then :func:`restore`); in a spreadsheet,
``=IF(LEFT(A2)="'", MID(A2, 2, LEN(A2)), A2)``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from aiecg.files import atomic_write_text

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet evaluate a cell (OWASP CSV injection)."""
QUOTE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """``value`` as a spreadsheet must receive it (see the module docstring); non-text values unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] == QUOTE or (value[0] in FORMULA_START and not _PLAIN_NUMBER.fullmatch(value)):
        return QUOTE + value
    return value


def restore_cell(value: Any) -> Any:
    """The exact value a neutralised cell held (the inverse of :func:`neutralise_cell`)."""
    return value[1:] if isinstance(value, str) and value.startswith(QUOTE) else value


def _text_columns(frame: pd.DataFrame) -> list[Any]:
    return [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)]


def _map_text(frame: pd.DataFrame, cell: Callable[[Any], Any]) -> pd.DataFrame:
    """A copy of ``frame`` with ``cell`` applied to every text cell and column name."""
    out = frame.copy()
    for column in _text_columns(out):
        out[column] = out[column].map(cell, na_action="ignore")
    out.columns = [cell(c) for c in out.columns]
    return out


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell and column name neutralised; numeric columns untouched."""
    return _map_text(frame, neutralise_cell)


def restore(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as read from a file :func:`write_csv` wrote, with the exact values back."""
    return _map_text(frame, restore_cell)


def to_csv_text(frame: pd.DataFrame, **to_csv: Any) -> str:
    """The CSV text of ``frame`` with formula cells neutralised (``to_csv`` options as pandas', default no
    index)."""
    to_csv.setdefault("index", False)
    safe = neutralise(frame)
    if any(safe[c].map(lambda v: isinstance(v, str) and "\r" in v).any() for c in _text_columns(safe)):
        to_csv.setdefault("quoting", csv.QUOTE_NONNUMERIC)  # pandas leaves a lone CR unquoted: it would split the row
    return safe.to_csv(**to_csv)


def write_csv(frame: pd.DataFrame, path: str | Path, **to_csv: Any) -> Path:
    """Write ``frame`` to ``path`` atomically (a reader never sees half a file), formula cells neutralised;
    creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, to_csv_text(frame, **to_csv))
    return path


def read_csv(path: str | Path, **read: Any) -> pd.DataFrame:
    """Read a CSV written by :func:`write_csv`, with the exact values back (``read`` options as pandas')."""
    return restore(pd.read_csv(path, **read))
