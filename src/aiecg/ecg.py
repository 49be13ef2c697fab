"""The ECG record: the one type every reader returns and every later stage consumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiecg.errors import ECGValidationError

STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
"""The conventional 12 leads, in the order aiecg stores them."""

MODEL_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
"""The eight independent leads the reference model reads (the other four are linear in I and II)."""

KNOWN_LEADS: frozenset[str] = frozenset(STANDARD_LEADS) | {"X", "Y", "Z"}

_LEAD_ALIASES = {name.upper(): name for name in KNOWN_LEADS}
_LEAD_ALIASES.update({"AVR": "aVR", "AVL": "aVL", "AVF": "aVF", "-AVR": "-aVR"})


def normalise_lead_name(name: str) -> str:
    """Map a vendor spelling ('avl', 'AVL', 'Lead_II', 'V5 ') onto aiecg's lead names.

    Raises:
        ECGValidationError: the name is not a lead aiecg knows.
    """
    cleaned = str(name).strip()
    for prefix in ("LEAD_", "LEAD ", "MDC_ECG_LEAD_"):
        if cleaned.upper().startswith(prefix):
            cleaned = cleaned[len(prefix):]
    key = cleaned.upper()
    if key not in _LEAD_ALIASES or key == "-AVR":
        raise ECGValidationError(
            f"unknown lead name {name!r}; expected one of {', '.join(STANDARD_LEADS)}, X, Y, Z"
        )
    return _LEAD_ALIASES[key]


@dataclass(frozen=True)
class ECG:
    """A resting ECG in millivolts.

    Attributes:
        signal: float32 array [lead, time] in millivolts.
        leads: lead names, one per row of ``signal``.
        fs: sampling rate in Hz.
        record_id: an identifier for error messages and indexes (usually the file stem).
        median: the device's median beat [lead, samples] in millivolts, same lead order, if the file has one.
        median_fs: sampling rate of ``median``.
        measurements: the device's global measurements (e.g. ``VentricularRate`` in bpm, ``QRSDuration`` in ms).
        lead_measurements: the device's per-lead measurements, ``{name: {lead: value}}`` in the file's units.
        patient: patient information from the file (age, sex, height, weight, ...).
        source: the path the record was read from, if any.
    """

    signal: np.ndarray
    leads: tuple[str, ...]
    fs: float
    record_id: str = ""
    median: np.ndarray | None = None
    median_fs: float | None = None
    measurements: dict[str, Any] = field(default_factory=dict)
    lead_measurements: dict[str, dict[str, float]] = field(default_factory=dict)
    patient: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        where = f"record {self.record_id!r}" + (f" ({self.source})" if self.source else "")
        signal = np.asarray(self.signal)
        if signal.dtype.kind not in "iufb":
            raise ECGValidationError(f"{where}: signal must hold real numbers, got dtype {signal.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf: refused below
            signal = np.ascontiguousarray(signal, dtype=np.float32)
        if signal.ndim != 2:
            raise ECGValidationError(f"{where}: signal must be 2-D [lead, time], got shape {signal.shape}")
        if signal.shape[0] != len(self.leads):
            raise ECGValidationError(
                f"{where}: {signal.shape[0]} signal rows but {len(self.leads)} lead names"
            )
        if signal.shape[0] == 0 or signal.shape[1] < 2:
            raise ECGValidationError(f"{where}: signal is empty (shape {signal.shape})")
        if not np.all(np.isfinite(signal)):  # checked after the float32 conversion: 1e39 is inf in float32
            bad = [self.leads[i] for i in np.flatnonzero(~np.isfinite(signal).all(axis=1))]
            raise ECGValidationError(
                f"{where}: non-finite samples (NaN, or beyond the float32 range of +-3.4e38 mV) in lead(s) "
                f"{', '.join(str(b) for b in bad)}"
            )
        if not (isinstance(self.fs, int | float | np.number) and np.isfinite(self.fs) and self.fs > 0):
            raise ECGValidationError(f"{where}: sampling rate must be > 0 Hz, got {self.fs!r}")
        leads = tuple(normalise_lead_name(lead) for lead in self.leads)
        if len(set(leads)) != len(leads):
            raise ECGValidationError(f"{where}: duplicate lead names {leads}")
        object.__setattr__(self, "leads", leads)
        object.__setattr__(self, "signal", signal)
        if self.median is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                median = np.asarray(self.median, dtype=np.float32)
            if median.ndim != 2 or median.shape[0] != len(leads) or not np.all(np.isfinite(median)):
                raise ECGValidationError(
                    f"{where}: vendor median beat must be finite with one row per lead, got {median.shape}"
                )
            if not (self.median_fs and np.isfinite(self.median_fs) and self.median_fs > 0):
                raise ECGValidationError(f"{where}: vendor median beat has no sampling rate")
            object.__setattr__(self, "median", median)

    @classmethod
    def from_array(
        cls,
        signal: np.ndarray,
        leads: Sequence[str],
        fs: float,
        record_id: str = "",
        **metadata: Any,
    ) -> ECG:
        """Build a validated ECG from an array in millivolts [lead, time]."""
        return cls(signal=np.asarray(signal), leads=tuple(leads), fs=float(fs), record_id=record_id, **metadata)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples in millivolts."""
        key = normalise_lead_name(name)
        try:
            return self.signal[self.leads.index(key)]
        except ValueError:
            raise KeyError(f"record {self.record_id!r} has no lead {key}; it has {', '.join(self.leads)}") from None

    def select(self, leads: Sequence[str]) -> np.ndarray:
        """The rows of ``leads`` in the given order, as a new float32 array [len(leads), time]."""
        return np.stack([self.lead(name) for name in leads])

    def median_leads(self, leads: Sequence[str]) -> np.ndarray | None:
        """The vendor median beat for ``leads`` in the given order, or None if the file had none."""
        if self.median is None:
            return None
        return np.stack([self.median[self.leads.index(normalise_lead_name(n))] for n in leads])
