"""MATLAB ``.mat`` ECGs as the SHIP cohort delivers them: one matrix of 15 leads (12 standard + Frank X, Y, Z).

The variable name, lead order, sampling rate and units are arguments with SHIP's defaults, so a cohort YAML can
describe another export without code changes. A ``.mat`` file with a WFDB header (``.hea``) beside it is a
PhysioNet challenge record and is read by the WFDB reader instead.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aiecg.ecg import ECG
from aiecg.errors import ECGReadError
from aiecg.io.arrays import ecg_from_rows, orient, unit_to_mv
from aiecg.io.checks import MAX_VALUES, library_detail

SUFFIXES = (".mat",)

SHIP_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "X", "Y", "Z",
)
"""Row order of the SHIP matrices (12 standard leads, then the Frank leads X, Y, Z)."""

SHIP_VARIABLE = "H12"
"""The SHIP variable holding the 15-lead matrix."""


_MAX_BYTES = MAX_VALUES * 8 + (1 << 20)
"""The most bytes one MATLAB variable may declare (MAX_VALUES doubles plus headers)."""

_MI_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8}
"""MAT v5 numeric data types (miINT8 ... miUINT64) and their item sizes."""
_MI_TEXT = {16, 17, 18}  # miUTF8, miUTF16, miUTF32
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function handle", 17: "opaque"}
_MX_NUMERIC = set(range(6, 16))  # mxDOUBLE ... mxUINT64
_MAX_DEPTH = 8


class _Bad(Exception):
    """A MAT-file structure aiecg refuses to hand to scipy (the message is the reason)."""


def _tag(buf: bytes, pos: int, end: int, order: str) -> tuple[int, int, int, int]:
    """One v5 data-element tag at ``pos``: (type, nbytes, data start, position of the next element)."""
    if pos + 8 > end:
        raise _Bad("a data element is cut off (truncated file?)")
    word, count = struct.unpack_from(order + "II", buf, pos)
    if word >> 16:  # small data element: type and size in one word, data in the next four bytes
        if word >> 16 > 4:
            raise _Bad(f"a small data element says {word >> 16} bytes; at most 4 fit")
        return word & 0xFFFF, word >> 16, pos + 4, pos + 8
    if pos + 8 + count > end:
        raise _Bad(f"a data element says {count} bytes but only {end - pos - 8} remain (truncated file?)")
    return word, count, pos + 8, pos + 8 + count + (-count % 8)


def _numeric(buf: bytes, pos: int, end: int, order: str, what: str) -> tuple[int, int, int]:
    mtype, count, start, after = _tag(buf, pos, end, order)
    if mtype not in _MI_SIZES:
        raise _Bad(f"{what} has unknown MATLAB data type {mtype}")
    if count % _MI_SIZES[mtype]:
        raise _Bad(f"{what} holds {count} bytes, not a whole number of {_MI_SIZES[mtype]}-byte values")
    return mtype, count // _MI_SIZES[mtype], after


def _matrix(buf: bytes, start: int, end: int, order: str, depth: int) -> dict[str, object]:
    """Check one miMATRIX element's content (flags, dimensions, name, data); return its name, class and shape."""
    if start == end:
        return {"name": "", "class": 0, "shape": (0, 0)}
    if depth > _MAX_DEPTH:
        raise _Bad(f"cells or structs nested deeper than {_MAX_DEPTH} levels")
    mtype, count, flags_at, pos = _tag(buf, start, end, order)
    if mtype != 6 or count != 8:
        raise _Bad("a variable's array flags are damaged")
    flags = struct.unpack_from(order + "I", buf, flags_at)[0]
    mclass, is_complex = flags & 0xFF, bool(flags & 0x800)
    if mclass not in _MX_NUMERIC and mclass not in (1, 2, 4):
        kind = _MX_NAMES.get(mclass)
        raise _Bad(f"a variable is a MATLAB {kind}, which aiecg does not read" if kind
                   else f"a variable has unknown MATLAB class {mclass}")
    mtype, count, dims_at, pos = _tag(buf, pos, end, order)
    if mtype != 5 or count < 8 or count % 4:
        raise _Bad("a variable's dimensions are damaged")
    shape = struct.unpack_from(f"{order}{count // 4}i", buf, dims_at)
    if min(shape) < 0:
        raise _Bad(f"a variable has negative dimensions {shape}")
    n = 1
    for size in shape:
        n *= size
    if n * 8 > _MAX_BYTES:
        raise _Bad(f"a variable declares {' x '.join(map(str, shape))} values, more than one ECG holds")
    mtype, count, name_at, pos = _tag(buf, pos, end, order)
    if mtype not in (1, 2) or count > 256:
        raise _Bad("a variable's name is damaged")
    name = bytes(buf[name_at:name_at + count]).decode("latin-1")
    if mclass in _MX_NUMERIC or mclass == 4:
        for part in ("real", "imaginary")[: 1 + is_complex]:
            what = f"variable {name!r} ({part} part)"
            if mclass == 4:
                mtype, count, _, pos = _tag(buf, pos, end, order)
                if mtype not in _MI_SIZES and mtype not in _MI_TEXT:
                    raise _Bad(f"{what} has unknown MATLAB data type {mtype}")
                continue
            mtype, values, pos = _numeric(buf, pos, end, order, what)
            if values != n:
                raise _Bad(f"variable {name!r} says {' x '.join(map(str, shape))} = {n} values "
                           f"but holds {values}")
    elif mclass == 1:  # cell: one matrix per element
        for _ in range(n):
            mtype, count, inner, pos = _tag(buf, pos, end, order)
            if mtype != _MI_MATRIX:
                raise _Bad(f"cell {name!r} holds data type {mtype} where a matrix belongs")
            _matrix(buf, inner, inner + count, order, depth + 1)
    else:  # struct: field-name length, field names, one matrix per element and field
        mtype, count, length_at, pos = _tag(buf, pos, end, order)
        if mtype != 5 or count != 4:
            raise _Bad(f"struct {name!r} has a damaged field-name length")
        length = struct.unpack_from(order + "i", buf, length_at)[0]
        mtype, count, _, pos = _tag(buf, pos, end, order)
        if not 0 < length <= 256 or mtype != 1 or count % length:
            raise _Bad(f"struct {name!r} has damaged field names")
        for _ in range(n * (count // length)):
            mtype, count, inner, pos = _tag(buf, pos, end, order)
            if mtype != _MI_MATRIX:
                raise _Bad(f"struct {name!r} holds data type {mtype} where a matrix belongs")
            _matrix(buf, inner, inner + count, order, depth + 1)
    return {"name": name, "class": mclass, "shape": tuple(shape)}


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, _MAX_BYTES + 1)
    except zlib.error as exc:
        raise _Bad(f"a compressed variable does not decompress ({exc})") from None
    if len(out) > _MAX_BYTES:
        raise _Bad("a compressed variable expands to more than one ECG can hold")
    return out


def _check_v5(buf: bytes) -> list[dict[str, object]]:
    """Walk every variable of a MAT v5 file and check every tag, type, class and size scipy would trust."""
    if len(buf) < 128:
        raise _Bad("the 128-byte MAT-file header is cut off")
    order = {b"IM": "<", b"MI": ">"}.get(bytes(buf[126:128]))
    if order is None:
        raise _Bad("the MAT-file header has no endian indicator ('IM'/'MI')")
    variables, pos = [], 128
    while pos < len(buf):
        if len(buf) - pos < 8 and not any(buf[pos:]):
            break  # trailing padding
        mtype, count, start, _ = _tag(buf, pos, len(buf), order)
        if count == 0:
            raise _Bad("a variable holds no bytes")
        pos = start + count  # top-level elements are not padded
        if mtype == _MI_COMPRESSED:
            inner = _inflate(bytes(buf[start:pos]))
            mtype, count, start2, _ = _tag(inner, 0, len(inner), order)
            if mtype != _MI_MATRIX:
                raise _Bad(f"a compressed variable holds data type {mtype}, not a matrix")
            variables.append(_matrix(inner, start2, start2 + count, order, 0))
        elif mtype == _MI_MATRIX:
            variables.append(_matrix(buf, start, pos, order, 0))
        else:
            raise _Bad(f"a top-level data element has type {mtype}, not a matrix")
    return variables


_V4_SIZES = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}


def _check_v4(buf: bytes) -> list[dict[str, object]]:
    """Walk every variable of a MAT v4 file: MOPT code, dimensions, name and data all inside the file."""
    first = struct.unpack_from("<i", buf, 0)[0]
    order = "<" if 0 <= first <= 5000 else ">"
    variables, pos = [], 0
    while pos < len(buf):
        if len(buf) - pos < 20:
            raise _Bad("a MAT v4 variable header is cut off (truncated file?)")
        mopt, rows, cols, imagf, namlen = struct.unpack_from(order + "5i", buf, pos)
        if not 0 <= mopt <= 5000:
            raise _Bad(f"a MAT v4 variable has an invalid type code {mopt}")
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if m > 1 or o != 0 or p not in _V4_SIZES or t > 1:
            raise _Bad(f"a MAT v4 variable has type code {mopt}, which aiecg does not read")
        if rows < 0 or cols < 0 or imagf not in (0, 1) or not 0 < namlen <= 256:
            raise _Bad("a MAT v4 variable header is damaged")
        if rows * cols * 8 > _MAX_BYTES:
            raise _Bad(f"a MAT v4 variable declares {rows} x {cols} values, more than one ECG holds")
        size = rows * cols * _V4_SIZES[p] * (1 + imagf)
        pos += 20
        if pos + namlen + size > len(buf):
            raise _Bad(f"a MAT v4 variable says {rows} x {cols} values but the file ends before them")
        name = bytes(buf[pos:pos + namlen]).rstrip(b"\0").decode("latin-1")
        variables.append({"name": name, "class": 6 if t == 0 else 4, "shape": (rows, cols)})
        pos += namlen + size
    return variables


def inspect_mat(path: str | Path) -> list[dict[str, object]]:
    """Check a MAT v4/v5 file's structure without scipy: every header, tag, data type, class and size.

    scipy's MAT reader trusts the data-type and class codes of a file and indexes C arrays with them, so a damaged
    code can crash the interpreter; nothing reaches scipy before this walk accepts it.

    Returns:
        one dict per variable: ``name``, MATLAB ``class`` code, ``shape``.

    Raises:
        ECGReadError: the file is not a MAT file aiecg reads, or its structure is damaged.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > 2 * _MAX_BYTES:
            raise ECGReadError(path, f"the file is {size:,} bytes, larger than any single ECG")
        buf = path.read_bytes()
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except OSError as exc:
        raise ECGReadError(path, f"cannot open file ({exc.strerror})") from None
    if buf.startswith(b"MATLAB 7.3"):
        raise ECGReadError(path, "MATLAB v7.3 (HDF5) files are not supported; save with -v7 or export to .npz")
    if len(buf) < 20 or buf[:20].count(0) == 20:
        raise ECGReadError(path, "not a readable MATLAB file: too short or blank (truncated?)")
    try:
        if 0 in buf[:4]:
            return _check_v4(buf)
        if len(buf) < 128:
            raise _Bad("the 128-byte MAT-file header is cut off (truncated file?)")
        version = buf[124:128]
        major = version[1] if version[2:3] == b"I" else version[0]
        if major != 1:
            raise _Bad(f"unknown MAT-file version {major}")
        return _check_v5(buf)
    except _Bad as exc:
        raise ECGReadError(path, f"not a readable MATLAB file: {exc}") from None


def _load(path: Path, names: list[str] | None) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    try:
        content = loadmat(path, squeeze_me=False, mat_dtype=False, variable_names=names)
    except Exception as exc:  # a damage the structural walk cannot see (e.g. a bad zlib checksum)
        raise ECGReadError(path, "not a readable MATLAB file: its data do not decode (damaged file?)"
                           + library_detail(exc)) from None
    return {k: v for k, v in content.items() if not k.startswith("__")}


def read_matlab(
    path: str | Path,
    variable: str | None = SHIP_VARIABLE,
    leads: Sequence[str] = SHIP_LEADS,
    fs: float = 500.0,
    units: str = "uV",
    layout: str = "auto",
    median_variable: str | None = None,
    derive: bool = True,
) -> ECG:
    """Read a MATLAB ``.mat`` ECG matrix (SHIP layout by default).

    Args:
        path: the ``.mat`` file. With a ``.hea`` beside it the WFDB reader reads the record instead.
        variable: the matrix to read; ``None`` takes the only 2-D numeric array in the file.
        leads: lead names of the matrix rows, in order.
        fs: sampling rate in Hz.
        units: units of the stored values (``uV``, ``mV``, ``V``, ``nV``).
        layout: ``auto`` (rows or columns, whichever has ``len(leads)``), ``leads_first`` or ``time_first``.
        median_variable: a second matrix with the device's median beat in the same lead order, if any.
        derive: derive missing limb leads from I and II.

    Raises:
        ECGReadError: unreadable file, missing variable, wrong lead count, or invalid samples.
    """
    path = Path(path)
    if path.with_suffix(".hea").exists():
        from aiecg.io.wfdb import read_wfdb

        return read_wfdb(path.with_suffix(".hea"))
    scale = unit_to_mv(units, path)
    found = inspect_mat(path)
    if variable is None:
        arrays = [str(v["name"]) for v in found if v["class"] in _MX_NUMERIC and len(v["shape"]) == 2
                  and min(v["shape"]) > 1]
        if len(arrays) != 1:
            names = sorted(str(v["name"]) for v in found)
            raise ECGReadError(path, f"cannot tell which variable is the ECG among {names}; pass variable=")
        variable = arrays[0]
    wanted = [variable] + ([median_variable] if median_variable is not None else [])
    content = _load(path, wanted)
    if variable not in content:
        names = ", ".join(sorted(str(v["name"]) for v in found)) or "none"
        raise ECGReadError(path, f"no variable {variable!r} (the file has {names})")

    def matrix(name: str) -> np.ndarray:
        value = content[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
            raise ECGReadError(path, f"variable {name!r} is not a numeric matrix")
        return orient(path, value, len(leads), layout)

    median = matrix(median_variable) if median_variable is not None and median_variable in content else None
    if median_variable is not None and median is None:
        raise ECGReadError(path, f"no median-beat variable {median_variable!r}")
    return ecg_from_rows(path, matrix(variable), leads, fs, scale_to_mv=scale, median=median, derive=derive)
