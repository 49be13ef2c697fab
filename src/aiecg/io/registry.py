"""One reader registry: ``read_ecg(path)`` picks the reader by content sniffing, then by suffix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiecg.ecg import ECG
from aiecg.errors import ECGReadError
from aiecg.io.checks import check_plausible, library_detail


@dataclass(frozen=True)
class Reader:
    """A registered file format.

    Attributes:
        name: the format's name, as used in cohort YAML files (``format: cardiosoft``).
        read: path -> ECG; raises ECGReadError.
        suffixes: lower-case file suffixes this reader handles.
        sniff: bytes of the file's head -> whether this reader recognises the content.
        claims: path -> whether this reader owns the file by its surroundings (e.g. a WFDB ``.mat`` signal file
            with its ``.hea`` header beside it); checked before sniffing.
    """

    name: str
    read: Callable[..., ECG]
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool] | None = None
    claims: Callable[[Path], bool] | None = None


_READERS: dict[str, Reader] = {}
_HEAD_BYTES = 4096
ARRAY_FORMATS = ("npy", "npz", "csv")
"""Bare arrays: they need the sampling rate and leads as options, so a folder scan takes them only when asked."""


def register_reader(reader: Reader) -> Reader:
    """Add a reader to the registry (a later registration of the same name replaces the earlier one)."""
    _READERS[reader.name] = reader
    return reader


def list_readers() -> list[str]:
    return sorted(_READERS)


def get_reader(name: str) -> Reader:
    try:
        return _READERS[name]
    except KeyError:
        raise ValueError(f"unknown ECG format {name!r}; known formats: {', '.join(list_readers())}") from None


def detect_format(path: Path) -> Reader:
    """The reader for ``path``: one that claims the path, else the first whose sniffer accepts the content,
    else the first by suffix."""
    for reader in _READERS.values():
        if reader.claims is not None and reader.claims(path):
            return reader
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except OSError as exc:
        raise ECGReadError(path, f"cannot open file ({exc.strerror})") from None
    for reader in _READERS.values():
        if reader.sniff is not None and reader.sniff(head):
            return reader
    suffix = path.suffix.lower()
    for reader in _READERS.values():
        if suffix in reader.suffixes and reader.sniff is None:
            return reader
    raise ECGReadError(
        path, f"no reader recognises this file (suffix {suffix!r}); known formats: {', '.join(list_readers())}"
    )


def read_ecg(path: str | Path, format: str | None = None, **options: Any) -> ECG:
    """Read any supported ECG file.

    Args:
        path: the file.
        format: a registered format name to skip detection (``cardiosoft``, ``wfdb``, ...).
        options: reader options (e.g. ``fs``, ``leads``, ``variable`` for MATLAB/NumPy/CSV files), usually from
            the cohort YAML's ``ecg: {options: ...}``.

    Raises:
        ECGReadError: the file cannot be read; the message names the file and the reason.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # /dev/zero would be read to the end, a FIFO would block
        kind = "a folder" if path.is_dir() else "a device, pipe or socket"
        raise ECGReadError(path, f"not a regular file ({kind}); pass an ECG file")
    reader = get_reader(format) if format else detect_format(path)
    try:
        ecg = reader.read(path, **options)
    except ECGReadError:
        raise
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise ECGReadError(path, f"the {reader.name} reader does not take the option(s) "
                                     f"{', '.join(sorted(options))}" + library_detail(exc)) from None
        raise ECGReadError(path, f"the {reader.name} reader could not make sense of this file (damaged?)"
                           + library_detail(exc)) from exc
    except MemoryError:
        raise ECGReadError(path, f"the {reader.name} reader ran out of memory on this file: "
                                 "not a single ECG, or a damaged size field") from None
    except Exception as exc:  # a damage no reader check foresaw: still one error naming the file
        raise ECGReadError(path, f"the {reader.name} reader could not make sense of this file (damaged?)"
                           + library_detail(exc)) from exc
    return check_plausible(ecg, path)


def ecg_files_in(folder: str | Path, format: str | None = None) -> tuple[list[Path], int]:
    """The ECG files under ``folder`` (recursive, sorted) and how many other files were passed over (skipped).

    A file counts by its suffix: one of ``format``'s, or of any registered reader's but the bare arrays
    (:data:`ARRAY_FORMATS`). A WFDB record is its ``.hea`` header, so its ``.dat``/``.mat`` signal files are not
    inputs of their own, nor skipped: a scanned reader claims them (:attr:`Reader.claims`) and reads them with
    their header. Hidden files and folders are left out.
    """
    folder = Path(folder)
    names = [format] if format else [n for n in list_readers() if n not in ARRAY_FORMATS]
    suffixes = {s for name in names for s in get_reader(name).suffixes}
    claimers = [claim for name in names if (claim := get_reader(name).claims) is not None]
    found, skipped = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        suffix = path.suffix.lower()
        if suffix not in suffixes or (suffix == ".mat" and path.with_suffix(".hea").exists()):
            if not any(claim(path) for claim in claimers):  # a companion is read with its record, not skipped
                skipped += 1
            continue
        found.append(path)
    return found, skipped
