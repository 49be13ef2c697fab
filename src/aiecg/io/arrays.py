"""Plain arrays: NumPy ``.npy``/``.npz`` and CSV, plus the one helper every array-based reader ends in.

Arrays carry no metadata of their own, so lead names, sampling rate and units come from the caller (the cohort
YAML passes them), from a CSV header row, or from keys of a self-describing ``.npz`` (``signal``, ``leads``,
``fs``, ``units``, optionally ``median`` and ``median_fs``). Nothing is guessed from the position of a row.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiecg.conventions import millivolts_per
from aiecg.ecg import ECG, STANDARD_LEADS, normalise_lead_name
from aiecg.errors import ECGReadError, ECGValidationError
from aiecg.io.checks import MAX_VALUES, check_fs, check_plausible, library_detail
from aiecg.signal.leads import DERIVED_LIMB_LEADS, derive_limb_leads

NPY_SUFFIXES = (".npy",)
NPZ_SUFFIXES = (".npz",)
CSV_SUFFIXES = (".csv",)



def unit_to_mv(unit: str, path: str | Path = "") -> float:
    """The factor that turns values in ``unit`` (mV, uV, V, nV and common spellings) into millivolts.

    Raises:
        ECGReadError: the unit is not a voltage unit aiecg knows.
    """
    factor = millivolts_per(unit)
    if factor is None:
        raise ECGReadError(path, f"unknown signal unit {unit!r}; expected mV, uV, V or nV")
    return factor


def _check_fs(path: Path, fs: Any, what: str) -> float:
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise ECGReadError(path, f"{what} sampling rate is missing or not a number (got {fs!r})") from None
    if not (np.isfinite(value) and value > 0):
        raise ECGReadError(path, f"{what} sampling rate must be > 0 Hz (got {fs!r})")
    check_fs(path, value, what)
    return value


def _rows(path: Path, array: Any, leads: Sequence[str], what: str) -> tuple[np.ndarray, tuple[str, ...]]:
    x = np.asarray(array)
    if x.dtype.kind not in "iuf":
        raise ECGReadError(path, f"{what} holds {x.dtype} values, not real numbers")
    with np.errstate(invalid="ignore", over="ignore"):  # out-of-range values become inf and are rejected below
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ECGReadError(path, f"{what} must be a 2-D [lead, time] array, got shape {x.shape}")
    if x.shape[0] != len(leads):
        raise ECGReadError(path, f"wrong lead count: {what} has {x.shape[0]} leads but {len(leads)} lead names")
    if x.shape[1] < 2:
        raise ECGReadError(path, f"{what} leads are empty ({x.shape[1]} samples)")
    try:
        names = tuple(normalise_lead_name(n) for n in leads)
    except ECGValidationError as exc:
        raise ECGReadError(path, f"{what}: {exc}") from None
    if len(set(names)) != len(names):
        raise ECGReadError(path, f"{what} names a lead twice: {names}")
    finite = np.isfinite(x)
    if not finite.all():
        bad = [names[i] for i in np.flatnonzero(~finite.all(axis=1))]
        raise ECGReadError(path, f"{what} has non-finite samples in lead(s) {', '.join(bad)}")
    return x, names


def _standard_order(x: np.ndarray, names: tuple[str, ...], derive: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    if derive and "I" in names and "II" in names and any(n not in names for n in DERIVED_LIMB_LEADS):
        x, names = derive_limb_leads(x, names)
    order = [names.index(n) for n in STANDARD_LEADS if n in names]
    order += [i for i, n in enumerate(names) if n not in STANDARD_LEADS]
    return x[order], tuple(names[i] for i in order)


def ecg_from_rows(
    path: str | Path,
    signal: Any,
    leads: Sequence[str],
    fs: Any,
    *,
    scale_to_mv: float = 1.0,
    median: Any = None,
    median_leads: Sequence[str] | None = None,
    median_fs: Any = None,
    median_scale_to_mv: float | None = None,
    derive: bool = True,
    record_id: str | None = None,
    measurements: Mapping[str, Any] | None = None,
    lead_measurements: Mapping[str, Mapping[str, float]] | None = None,
    patient: Mapping[str, Any] | None = None,
) -> ECG:
    """Build a validated :class:`ECG` from a [lead, time] array as a file stored it.

    Lead names are normalised, values scaled to millivolts, missing limb leads (III, aVR, aVL, aVF) derived from
    I and II when ``derive`` is set, and the leads put in the standard 12-lead order (other leads, e.g. X, Y, Z,
    follow in file order). A vendor median beat gets the same treatment and must end with the same leads.

    Raises:
        ECGReadError: wrong lead count, empty or non-finite leads, unknown or duplicate lead names, or a missing
            or non-positive sampling rate; the message names the file.
    """
    path = Path(path)
    fs_value = _check_fs(path, fs, "signal")
    x, names = _rows(path, signal, leads, "signal")
    x, names = _standard_order(x * scale_to_mv, names, derive)
    m, m_fs = None, None
    if median is not None:
        m_fs = _check_fs(path, median_fs if median_fs is not None else fs_value, "median beat")
        m, m_names = _rows(path, median, median_leads if median_leads is not None else leads, "median beat")
        m, m_names = _standard_order(m * (median_scale_to_mv if median_scale_to_mv is not None else scale_to_mv),
                                     m_names, derive)
        if set(m_names) != set(names):
            raise ECGReadError(path, f"median beat leads {m_names} differ from the signal leads {names}")
        m = m[[m_names.index(n) for n in names]]
    try:
        ecg = ECG.from_array(
            x, names, fs_value, record_id=record_id if record_id is not None else path.stem,
            median=m, median_fs=m_fs, measurements=dict(measurements or {}),
            lead_measurements={k: dict(v) for k, v in (lead_measurements or {}).items()},
            patient=dict(patient or {}), source=str(path),
        )
    except ECGValidationError as exc:
        raise ECGReadError(path, str(exc)) from None
    return check_plausible(ecg, path)


def orient(path: str | Path, array: Any, n_leads: int, layout: str = "auto") -> np.ndarray:
    """Return ``array`` as [lead, time]: ``layout`` is ``"leads_first"``, ``"time_first"`` or ``"auto"``.

    ``auto`` keeps the array when its first axis has ``n_leads`` rows and transposes it when only its second axis
    does; anything else is a wrong lead count.
    """
    try:
        x = np.asarray(array)
    except Exception:  # an object array scipy could not make sense of
        raise ECGReadError(path, "the signal is not a numeric array") from None
    if x.ndim != 2:
        raise ECGReadError(path, f"the signal must be a 2-D array, got shape {x.shape}")
    if layout == "leads_first":
        return x
    if layout == "time_first":
        return x.T
    if layout != "auto":
        raise ValueError(f"layout must be 'auto', 'leads_first' or 'time_first', not {layout!r}")
    if x.shape[0] == n_leads:
        return x
    if x.shape[1] == n_leads:
        return x.T
    raise ECGReadError(path, f"wrong lead count: array of shape {x.shape} has no axis of {n_leads} leads")


def _require(path: Path, value: Any, name: str, hint: str) -> Any:
    if value is None:
        raise ECGReadError(path, f"no {name}: {hint}")
    return value


def read_npy(
    path: str | Path,
    leads: Sequence[str] | None = None,
    fs: float | None = None,
    units: str = "mV",
    layout: str = "auto",
) -> ECG:
    """Read a NumPy ``.npy`` array of one ECG; lead names and sampling rate come from the arguments.

    Raises:
        ECGReadError: unreadable file, no ``leads`` or ``fs`` given, or invalid samples.
    """
    path = Path(path)
    leads = _require(path, leads, "lead names", "a .npy file has none; pass leads=[...] (cohort YAML: leads)")
    fs = _require(path, fs, "sampling rate", "a .npy file has none; pass fs=... (cohort YAML: fs)")
    try:
        with open(path, "rb") as handle:
            _array_header(path, handle, path.stat().st_size, "the array", MAX_VALUES)
            handle.seek(0)
            array = np.load(handle, allow_pickle=False)
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except ECGReadError:
        raise
    except Exception as exc:  # numpy's header parser lets SyntaxError/TokenError through on damaged headers
        raise ECGReadError(path, "not a readable .npy array: its data do not decode (truncated or damaged file?)"
                           + library_detail(exc)) from None
    return ecg_from_rows(path, orient(path, array, len(leads), layout), leads, fs, scale_to_mv=unit_to_mv(units, path))


def _array_header(path: Path, handle: Any, available: int, what: str, cap: int) -> tuple[tuple[int, ...], np.dtype]:
    """Read and check a ``.npy`` header from ``handle``: a numeric or text dtype, at most ``cap`` values, and
    data that fit in the ``available`` bytes. Leaves ``handle`` at the start of the data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(handle, max_header_size=10_000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(handle, max_header_size=10_000)
        else:
            raise ECGReadError(path, f"{what} has unknown .npy format version {version}")
    except ECGReadError:
        raise
    except Exception as exc:  # ValueError/SyntaxError on a damaged header dictionary
        raise ECGReadError(path, f"{what} has a damaged .npy header (not a NumPy array file?)"
                           + library_detail(exc)) from None
    if dtype.hasobject or dtype.kind not in "biufUS":
        raise ECGReadError(path, f"{what} holds {dtype} values, not numbers or text")
    count = 1
    for size in shape:
        count *= size
    if count > cap:
        raise ECGReadError(path, f"{what} declares shape {shape} ({count:,} values), more than the {cap:,} "
                                 "aiecg reads in one record")
    header = handle.tell()
    if header + count * dtype.itemsize > available:
        raise ECGReadError(path, f"{what} says shape {shape} ({count * dtype.itemsize:,} bytes of data) but the "
                                 f"file holds {max(available - header, 0):,}: truncated file?")
    return tuple(shape), dtype


_NPZ_SMALL = 1024
"""The most values a metadata member of an ``.npz`` (``leads``, ``fs``, ``units``, ``median_fs``) may hold."""


def _npz_member(path: Path, archive: zipfile.ZipFile, key: str, cap: int) -> np.ndarray | None:
    """One member of an ``.npz`` archive, or None when absent; its header is checked before any data is read."""
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        return None
    what = f"array {key!r}"
    try:
        with archive.open(info) as handle:
            _array_header(path, handle, info.file_size, what, cap)
        with archive.open(info) as handle:  # the header is fine: now read the data, from the start
            return np.lib.format.read_array(handle, allow_pickle=False)
    except ECGReadError:
        raise
    except Exception as exc:  # zlib.error, BadZipFile (CRC), EOFError, ValueError from a damaged member
        raise ECGReadError(path, f"{what} in the archive does not decode (truncated or damaged file?)"
                           + library_detail(exc)) from None


def _npz_text(value: np.ndarray) -> list[str]:
    return [str(v) for v in np.atleast_1d(value).tolist()]


def _npz_scalar(path: Path, value: np.ndarray, key: str) -> Any:
    if value.size != 1:
        raise ECGReadError(path, f"array {key!r} holds {value.size} values; one number was expected")
    return value.item()


def read_npz(
    path: str | Path,
    leads: Sequence[str] | None = None,
    fs: float | None = None,
    units: str | None = None,
    key: str = "signal",
    layout: str = "auto",
) -> ECG:
    """Read a NumPy ``.npz`` archive: array ``key`` (default ``signal``), and ``leads``, ``fs``, ``units``,
    ``median``, ``median_fs`` from keys of the same names unless given as arguments.

    Raises:
        ECGReadError: unreadable archive, missing key, no lead names or sampling rate, or invalid samples.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except Exception as exc:  # BadZipFile, OSError, ValueError on a damaged central directory
        raise ECGReadError(path, "not a readable .npz archive: its zip directory is damaged or the file is truncated"
                           + library_detail(exc)) from None
    with archive:
        members = sorted(n[:-4] for n in archive.namelist() if n.endswith(".npy"))
        signal = _npz_member(path, archive, key, MAX_VALUES)
        if signal is None:
            raise ECGReadError(path, f"no array {key!r} in the archive (it has {', '.join(members) or 'none'})")
        if leads is None:
            stored = _npz_member(path, archive, "leads", _NPZ_SMALL)
            leads = _npz_text(stored) if stored is not None else None
        leads = _require(path, leads, "lead names", "store a 'leads' key or pass leads=[...]")
        if fs is None:
            stored = _npz_member(path, archive, "fs", _NPZ_SMALL)
            fs = _npz_scalar(path, stored, "fs") if stored is not None else None
        fs = _require(path, fs, "sampling rate", "store an 'fs' key or pass fs=...")
        if units is None:
            stored = _npz_member(path, archive, "units", _NPZ_SMALL)
            units = str(_npz_scalar(path, stored, "units")) if stored is not None else "mV"
        scale = unit_to_mv(units, path)
        median = _npz_member(path, archive, "median", MAX_VALUES)
        median_fs = None
        if median is not None:
            median = orient(path, median, len(leads), layout)
            stored = _npz_member(path, archive, "median_fs", _NPZ_SMALL)
            median_fs = _npz_scalar(path, stored, "median_fs") if stored is not None else None
    return ecg_from_rows(path, orient(path, signal, len(leads), layout), leads, fs, scale_to_mv=scale,
                         median=median, median_fs=median_fs)


def read_csv(
    path: str | Path,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str = "mV",
    delimiter: str | None = None,
) -> ECG:
    """Read a CSV file with one column per lead; lead names from the header row unless ``leads`` is given.

    A header row is recognised when its cells are lead names; without one, ``leads`` is required. A column named
    ``time``/``t`` is ignored.

    Raises:
        ECGReadError: no sampling rate, unreadable rows, ragged rows, non-numeric or non-finite values.
    """
    path = Path(path)
    fs = _require(path, fs, "sampling rate", "a CSV file has none; pass fs=... (cohort YAML: fs)")
    try:
        size = path.stat().st_size
        if size > MAX_VALUES * 24:
            raise ECGReadError(path, f"the file is {size:,} bytes, more text than one ECG of at most "
                                     f"{MAX_VALUES:,} values takes")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except (OSError, UnicodeError) as exc:
        raise ECGReadError(path, f"cannot read the file as UTF-8 text ({exc})") from None
    if delimiter is None:
        first = text.split("\n", 1)[0]
        delimiter = max((",", ";", "\t"), key=first.count)
    try:
        rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise ECGReadError(path, f"not a readable CSV file ({exc})") from None
    if not rows:
        raise ECGReadError(path, "the file is empty")
    header = [c.strip() for c in rows[0]]
    has_header = not _is_number(header[0])
    skip = {i for i, c in enumerate(header) if c.lower() in ("time", "t", "time_s", "seconds")} if has_header else set()
    if leads is None:
        if not has_header:
            raise ECGReadError(path, "no header row with lead names; pass leads=[...]")
        leads = [c for i, c in enumerate(header) if i not in skip]
    body = rows[1:] if has_header else rows
    width = len(rows[0])
    if any(len(row) != width for row in body):
        raise ECGReadError(path, f"rows have different numbers of columns (expected {width}): truncated file?")
    try:
        values = np.array([[float(c) for i, c in enumerate(row) if i not in skip] for row in body], dtype=np.float64)
    except ValueError:
        raise ECGReadError(path, "a cell is not a number") from None
    if values.ndim != 2 or values.shape[0] == 0:
        raise ECGReadError(path, "the file holds no samples")
    return ecg_from_rows(path, values.T, list(leads), fs, scale_to_mv=unit_to_mv(units, path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sniff_npy(head: bytes) -> bool:
    """True for the NumPy ``.npy`` magic string."""
    return head.startswith(b"\x93NUMPY")
