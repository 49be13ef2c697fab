"""MATLAB ``.mat`` ECGs as the SHIP cohort delivers them: one matrix of 15 leads (12 standard + Frank X, Y, Z).

The variable name, lead order, sampling rate and units are arguments with SHIP's defaults, so a cohort YAML can
describe another export without code changes. A ``.mat`` file with a WFDB header (``.hea``) beside it is a
PhysioNet challenge record and is read by the WFDB reader instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aiecg.ecg import ECG
from aiecg.errors import ECGReadError
from aiecg.io.arrays import ecg_from_rows, orient, unit_to_mv

SUFFIXES = (".mat",)

SHIP_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "X", "Y", "Z",
)
"""Row order of the SHIP matrices (12 standard leads, then the Frank leads X, Y, Z)."""

SHIP_VARIABLE = "H12"
"""The SHIP variable holding the 15-lead matrix."""


def _load(path: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    with open(path, "rb") as handle:
        head = handle.read(128)
    if head.startswith(b"MATLAB 7.3"):
        raise ECGReadError(path, "MATLAB v7.3 (HDF5) files are not supported; save with -v7 or export to .npz")
    try:
        content = loadmat(path, squeeze_me=False, mat_dtype=False)
    except MatReadError as exc:
        raise ECGReadError(path, f"not a readable MATLAB file ({exc}); truncated?") from None
    except Exception as exc:  # scipy's MAT parser raises many kinds on damaged input (zlib.error, OSError, ...)
        raise ECGReadError(path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
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
    if not path.exists():
        raise ECGReadError(path, "file not found")
    content = _load(path)
    if variable is None:
        arrays = [k for k, v in content.items() if isinstance(v, np.ndarray) and v.ndim == 2
                  and v.dtype.kind in "iuf" and min(v.shape) > 1]
        if len(arrays) != 1:
            raise ECGReadError(path, f"cannot tell which variable is the ECG among {sorted(content)}; pass variable=")
        variable = arrays[0]
    if variable not in content:
        raise ECGReadError(path, f"no variable {variable!r} (the file has {', '.join(sorted(content)) or 'none'})")
    scale = unit_to_mv(units, path)

    def matrix(name: str) -> np.ndarray:
        value = content[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
            raise ECGReadError(path, f"variable {name!r} is not a numeric matrix")
        return orient(path, value, len(leads), layout)

    median = matrix(median_variable) if median_variable is not None and median_variable in content else None
    if median_variable is not None and median is None:
        raise ECGReadError(path, f"no median-beat variable {median_variable!r}")
    return ecg_from_rows(path, matrix(variable), leads, fs, scale_to_mv=scale, median=median, derive=derive)
