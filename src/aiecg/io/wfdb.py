"""WFDB records (``.hea`` + ``.dat``/``.mat``), through the ``wfdb`` package (PhysioNet)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from aiecg.conventions import millivolts_per, sex_or_unknown
from aiecg.ecg import ECG
from aiecg.errors import ECGReadError, ECGValidationError
from aiecg.io.checks import check_fs, check_plausible, check_size, library_detail

SUFFIXES = (".hea",)

_BITS = {"8": 8, "16": 16, "61": 16, "80": 8, "160": 16, "212": 12, "24": 24, "32": 32, "310": 32 / 3, "311": 32 / 3}
"""Bits per sample of the WFDB storage formats aiecg reads (format 310/311 pack three samples in four bytes)."""


def _record_path(path: Path) -> Path:
    """The record path (header path without ``.hea``) of a header, signal file or suffix-less record path."""
    if path.suffix.lower() in (".hea", ".dat", ".mat"):
        return path.with_suffix("")
    return path


def _header(record: Path) -> Path:
    return record.parent / f"{record.name}.hea"


def claims(path: Path) -> bool:
    """A WFDB record by its surroundings: a ``.mat``/``.dat`` signal file with its header beside it (PhysioNet
    challenges), or a record path without suffix (``records500/00841_hr``) whose ``.hea`` exists."""
    if path.suffix.lower() in (".mat", ".dat"):
        return path.with_suffix(".hea").exists()
    return path.suffix.lower() != ".hea" and not path.exists() and _header(path).exists()


_PAIR = re.compile(r"<\s*([^<>:]+?)\s*>\s*:?\s*([^<]*)")


def _number(text: str) -> float:
    try:
        value = float(str(text).strip().split()[0])
    except (ValueError, IndexError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def parse_comments(comments: list[str]) -> dict[str, Any]:
    """Patient fields from WFDB header comments, in both PhysioNet styles.

    ``Age: 54`` / ``Sex: Male`` (the PhysioNet/CinC challenges, PTB-XL) and ``<age>: 54 <sex>: M`` (LUDB, the
    European ST-T and other PhysioNet databases, several pairs per line allowed). Every field is kept under its
    lower-case name as text; ``age``, ``height_cm`` and ``weight_kg`` become numbers (NaN when not a number,
    e.g. ``Unknown``) and ``sex`` is ``male``/``female``/``unknown`` as the other readers spell it.
    """
    fields: dict[str, str] = {}
    for comment in comments:
        text = comment.strip().lstrip("#").strip()
        pairs = _PAIR.findall(text)
        if pairs:
            for key, value in pairs:
                fields.setdefault(key.strip().lower(), value.strip())
        elif ":" in text:
            key, value = text.split(":", 1)
            fields.setdefault(key.strip().lower(), value.strip())
    patient: dict[str, Any] = dict(fields)
    if "age" in fields:
        patient["age"] = _number(fields["age"])
    if "sex" in fields or "gender" in fields:
        patient["sex"] = sex_or_unknown(fields.get("sex", fields.get("gender", "")))
    for key, name in (("height", "height_cm"), ("weight", "weight_kg")):
        if key in fields:
            patient[name] = _number(fields[key])
    return patient


def _check_signal_files(path: Path, header: Any, record: Path) -> None:
    """Refuse what wfdb would misread or choke on: an unknown storage format, an absurd size, or a signal file
    shorter than the header says (checked on the files before any sample is decoded)."""
    n_sig = int(header.n_sig or 0)
    if n_sig < 1:
        raise ECGReadError(path, "the WFDB header lists no signals")
    fs = float(header.fs or 0)
    check_fs(path, fs)
    sig_len = header.sig_len
    if sig_len is not None:
        check_size(path, n_sig, int(sig_len), fs)
    files: dict[str, list[int]] = {}
    for i, (name, fmt) in enumerate(zip(header.file_name or [], header.fmt or [])):
        if str(fmt) not in _BITS:
            raise ECGReadError(path, f"signal {i + 1} is stored in WFDB format {fmt!r}, which aiecg does not read "
                                     f"(formats {', '.join(sorted(_BITS, key=int))})")
        if not name or Path(name).name != name:
            raise ECGReadError(path, f"signal {i + 1} names the signal file {name!r}, which is not a file beside "
                                     "the header")
        files.setdefault(name, []).append(i)
    for name, signals in files.items():
        file = record.parent / name
        if not file.exists():
            raise ECGReadError(path, f"the WFDB signal file {name} named in the header is missing")
        if sig_len is None:
            continue
        offset = max(int((header.byte_offset or [0] * n_sig)[i] or 0) for i in signals)
        bits = sum(_BITS[str(header.fmt[i])] for i in signals)
        need = offset + math.ceil(int(sig_len) * bits / 8)
        size = file.stat().st_size
        if size < need:
            held = max(size - offset, 0) * 8 // max(int(bits), 1)
            raise ECGReadError(path, f"the header says {sig_len} samples per lead but the signal file {name} "
                                     f"holds {held}: truncated file?")


def _read_samples(header: Any, record: Path) -> Any:
    """``wfdb.rdrecord(record)`` on the header already parsed (parsing a header costs about as much as decoding
    its samples): the steps ``rdrecord`` takes for a single-segment record with its defaults (all channels,
    physical units, smoothed frames, 64-bit), in its order. Any other record, or a ``wfdb`` without these
    steps, goes through ``rdrecord`` itself."""
    import wfdb
    from wfdb.io import _signal

    steps = ("check_read_inputs", "_arrange_fields", "dac", "convert_dtype")
    if (type(header) is not wfdb.Record or not header.n_sig or header.sig_len is None
            or not hasattr(_signal, "_rd_segment") or not all(hasattr(header, s) for s in steps)):
        return wfdb.rdrecord(str(record))
    channels = list(range(header.n_sig))
    header.check_read_inputs(0, header.sig_len, channels, True, True, 64)
    header.e_d_signal = _signal._rd_segment(
        file_name=header.file_name, dir_name=str(record.parent.absolute()), pn_dir=None, fmt=header.fmt,
        n_sig=header.n_sig, sig_len=header.sig_len, byte_offset=header.byte_offset,
        samps_per_frame=header.samps_per_frame, skew=header.skew, init_value=header.init_value, sampfrom=0,
        sampto=header.sig_len, channels=channels, ignore_skew=False, no_file=False, sig_data=None, return_res=64)
    header._arrange_fields(channels=channels, sampfrom=0, smooth_frames=True)
    header.dac(expanded=False, return_res=64, inplace=True)
    header.convert_dtype(True, 64, True)
    return header


def read_wfdb(path: str | Path) -> ECG:
    """Read a WFDB record given its header path, a signal file with its header beside it, or the record path
    without suffix.

    Header comments fill ``ECG.patient`` (see :func:`parse_comments`).

    Raises:
        ECGReadError: missing header or signal file, a header that does not parse, a signal file shorter than the
            header says, unknown units or storage format, or invalid samples.
    """
    import wfdb

    path = Path(path)
    record = _record_path(path)
    if not _header(record).exists():
        raise ECGReadError(path, "WFDB header (.hea) not found")
    try:
        header = wfdb.rdheader(str(record))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError/KeyError on a damaged header line
        raise ECGReadError(path, "the WFDB header does not parse: a record or signal line is damaged"
                           + library_detail(exc)) from None
    _check_signal_files(path, header, record)
    try:
        data = _read_samples(header, record)
    except Exception as exc:  # wfdb raises bare ValueError/IndexError/OSError on damaged files
        raise ECGReadError(path, "the WFDB signal file does not decode as its header describes it"
                           + library_detail(exc)) from None
    if data.p_signal is None or data.p_signal.size == 0:
        raise ECGReadError(path, "WFDB record holds no samples")
    scale = []
    for unit in data.units or [""] * data.n_sig:
        # WFDB's "NU" (no unit) and a blank unit are taken as millivolts, the PhysioNet convention for ECGs
        factor = 1.0 if (unit or "").strip().lower() in ("", "nu") else millivolts_per(unit)
        if factor is None:
            raise ECGReadError(path, f"unknown signal unit {unit!r}; expected mV, uV or V")
        scale.append(factor)
    signal = data.p_signal.T * np.asarray(scale)[:, None]
    try:
        ecg = ECG.from_array(
            signal, data.sig_name, float(data.fs or 0), record_id=record.name,
            patient=parse_comments(list(data.comments or [])), source=str(path),
        )
    except ECGValidationError as exc:
        raise ECGReadError(path, str(exc)) from None
    return check_plausible(ecg, path)


def write_wfdb(path: str | Path, ecg: ECG, comments: list[str] | None = None) -> Path:
    """Write ``ecg`` as a WFDB record (format 16, microvolt resolution); returns the header path."""
    import wfdb

    path = Path(path)
    record_name = path.with_suffix("").name
    path.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        record_name, fs=ecg.fs, units=["mV"] * len(ecg.leads), sig_name=list(ecg.leads),
        p_signal=ecg.signal.T.astype(np.float64), fmt=["16"] * len(ecg.leads),
        adc_gain=[1000.0] * len(ecg.leads), baseline=[0] * len(ecg.leads),
        comments=comments or [], write_dir=str(path.parent),
    )
    return path.parent / f"{record_name}.hea"
