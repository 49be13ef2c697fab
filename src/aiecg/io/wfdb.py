"""WFDB records (``.hea`` + ``.dat``/``.mat``), through the ``wfdb`` package (PhysioNet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiecg.ecg import ECG
from aiecg.errors import ECGReadError, ECGValidationError

SUFFIXES = (".hea",)


def claims(path: Path) -> bool:
    """A ``.mat``/``.dat`` signal file with its WFDB header beside it is a WFDB record (PhysioNet challenges)."""
    return path.suffix.lower() in (".mat", ".dat") and path.with_suffix(".hea").exists()

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}


def read_wfdb(path: str | Path) -> ECG:
    """Read a WFDB record given its header path (or the record path without suffix).

    Header comment lines of the form ``key: value`` (PhysioNet challenge style) go into ``ECG.patient``.

    Raises:
        ECGReadError: missing header or signal file, unknown units, or invalid samples.
    """
    import wfdb

    path = Path(path)
    record_path = path.with_suffix("") if path.suffix.lower() in (".hea", ".dat", ".mat") else path
    if not record_path.with_suffix(".hea").exists():
        raise ECGReadError(path, "WFDB header (.hea) not found")
    try:
        record = wfdb.rdrecord(str(record_path))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError/OSError on damaged files
        raise ECGReadError(path, f"cannot read WFDB record: {type(exc).__name__}: {exc}") from None
    if record.p_signal is None or record.p_signal.size == 0:
        raise ECGReadError(path, "WFDB record holds no samples")
    scale = []
    for unit in record.units or [""] * record.n_sig:
        key = (unit or "").strip().lower()
        if key not in _UNIT_TO_MV:
            raise ECGReadError(path, f"unknown signal unit {unit!r}; expected mV, uV or V")
        scale.append(_UNIT_TO_MV[key])
    signal = record.p_signal.T * np.asarray(scale)[:, None]
    patient: dict[str, str] = {}
    for comment in record.comments or []:
        if ":" in comment:
            key, value = comment.split(":", 1)
            patient[key.strip().lower()] = value.strip()
    if "sex" in patient:  # the other readers' spelling: male / female / unknown
        patient["sex"] = {"male": "male", "m": "male", "female": "female", "f": "female"}.get(
            patient["sex"].lower(), "unknown")
    try:
        return ECG.from_array(
            signal, record.sig_name, float(record.fs or 0), record_id=record_path.name,
            patient=patient, source=str(path),
        )
    except ECGValidationError as exc:
        raise ECGReadError(path, str(exc)) from None


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
