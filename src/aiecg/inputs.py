"""The ECG files a batch command's inputs name (``aiecg measure``, ``aiecg predict``): one expansion for both.

Files are taken as given (one that does not exist still gets its error row), folders are scanned recursively
(:func:`aiecg.io.ecg_files_in`: by ``--format``'s suffixes, or every reader's but the bare arrays'; a WFDB record
counts once, by its ``.hea`` header, and its signal files are read with it, not skipped), and a cohort YAML
contributes every ECG its table names, with its own reader format and options and the reason the cohort refuses
to open a file (:func:`aiecg.data.cohort.ecg_records`: a path outside its ECG folder is never read).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiecg.errors import AiecgError

log = logging.getLogger("aiecg")


class InputError(AiecgError, ValueError):
    """The inputs of a batch command are not usable as given (nothing found, an unknown ``--format``)."""


@dataclass(frozen=True)
class InputRecord:
    """One ECG to process.

    Attributes:
        file: its path, as given or as the cohort resolves it ('' where the cohort table names none).
        record_id: the cohort's id; '' for a file given directly (its stem or its header's id stand in).
        format: the reader to use (None: detect from the file).
        options: the reader's options (from a cohort YAML).
        problem: why the cohort refuses to open the file ('' when it may).
        cohort: the cohort YAML that named it ('' for files and folders).
    """

    file: str
    record_id: str = ""
    format: str | None = None
    options: dict[str, Any] | None = None
    problem: str = ""
    cohort: str = ""


def check_format(fmt: str | None) -> None:
    """Refuse a ``--format`` no reader has, naming the readers there are."""
    if fmt is not None:
        from aiecg.io import get_reader

        try:
            get_reader(fmt)
        except ValueError as exc:
            raise InputError(f"--format: {exc}") from None


def expand_inputs(inputs: Iterable[str | Path], fmt: str | None = None) -> list[InputRecord]:
    """Every ECG the inputs name, in the order given.

    ``fmt`` forces the reader of files and folders; a cohort YAML names its own (``fmt`` where it names none).

    Raises:
        InputError: an unknown ``fmt``, or nothing at all was found.
    """
    from aiecg.io import ecg_files_in

    check_format(fmt)
    records: list[InputRecord] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found, skipped = ecg_files_in(path, fmt)
            if skipped:
                log.info("%s: %d file(s) skipped (not an ECG file by their suffix)", path, skipped)
            records += [InputRecord(str(file), format=fmt) for file in found]
        elif path.suffix.lower() in (".yaml", ".yml") and path.is_file():
            from aiecg.data.cohort import ECG_PATH, ecg_records

            for r in ecg_records(path).itertuples():
                records.append(InputRecord(str(getattr(r, ECG_PATH) or ""), str(r.id), r.format or fmt,
                                           r.options or None, str(getattr(r, "problem", "") or ""), str(path)))
        else:  # a file; one that cannot be read becomes an error row
            records.append(InputRecord(str(path), format=fmt))
    if not records:
        raise InputError("no ECG files found in the inputs given")
    return records
