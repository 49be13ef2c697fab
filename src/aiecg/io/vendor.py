"""Vendor ECG formats: GE MUSE XML, HL7 aECG, SCP-ECG and Philips Sierra XML (through ``ecgdatakit``), and DICOM
12-lead waveforms (through ``pydicom``).

Both libraries are the optional ``formats`` extra and are imported lazily. ``ecgdatakit`` decodes the four formats
correctly on the real test files (MUSE base64 int16, HL7 digits with scale, SCP Huffman/difference coding, Sierra
XLI compression) and parses XML with ``defusedxml``/``xmltodict(disable_entities=True)``. DICOM goes straight
through ``pydicom`` because ``ecgdatakit`` drops a median-beat multiplex group that has no label (GE MV360).

Every reader returns millivolts, the 12 standard leads in order (limb leads derived from I and II where a device
stores 8), the vendor median beat and global measurements when present, and a little patient information.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aiecg.conventions import sex_or_unknown
from aiecg.ecg import ECG
from aiecg.errors import ECGReadError
from aiecg.io.arrays import ecg_from_rows, unit_to_mv
from aiecg.io.checks import check_fs, check_size, library_detail

MUSE_SUFFIXES = (".xml",)
HL7_SUFFIXES = (".xml",)
SIERRA_SUFFIXES = (".xml",)
SCP_SUFFIXES = (".scp",)
DICOM_SUFFIXES = (".dcm",)

_INSTALL = "pip install 'aiecg[formats]'"

_MEASUREMENT_NAMES = {
    "heart_rate": "VentricularRate", "rr_interval": "RRInterval", "pr_interval": "PQInterval",
    "qrs_duration": "QRSDuration", "qt_interval": "QTInterval", "qtc_bazett": "QTCInterval",
    "qtc_fridericia": "QTcFridericia", "p_axis": "PAxis", "qrs_axis": "RAxis", "t_axis": "TAxis",
    "qrs_count": "QRSNum",
}
"""ecgdatakit's global measurements under the names the CardioSoft reader uses (ms, bpm, degrees)."""

_DICOM_MEASUREMENTS = {
    "ventricular heart rate": "VentricularRate", "rr interval": "RRInterval", "pp interval": "PPInterval",
    "pr interval": "PQInterval", "qrs duration": "QRSDuration", "qt interval": "QTInterval",
    "qtc interval": "QTCInterval", "p axis": "PAxis", "qrs axis": "RAxis", "t axis": "TAxis",
}

_SCPECG_LEAD_CODES = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
    61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
}
"""SCP-ECG lead codes (DICOM scheme SCPECG, values ``5.6.3-9-N``); MDC codes ``2:N`` use the same numbers."""


# ---------------------------------------------------------------------------------------------------- sniffers


def _head_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    return head.decode("utf-8", errors="ignore")


def sniff_muse(head: bytes) -> bool:
    """True for GE MUSE XML (``<RestingECG>``), which is not Philips ``<restingecgdata>``."""
    text = _head_text(head)
    return re.search(r"<RestingECG[\s>]", text) is not None and "<restingecgdata" not in text


def sniff_hl7_aecg(head: bytes) -> bool:
    """True for an HL7 annotated ECG (``<AnnotatedECG>``, any namespace prefix)."""
    return re.search(r"<([A-Za-z_][\w.-]*:)?AnnotatedECG\b", _head_text(head)) is not None


def sniff_sierra(head: bytes) -> bool:
    """True for Philips Sierra XML (``<restingecgdata>``, UTF-8 or UTF-16)."""
    return "<restingecgdata" in _head_text(head)


def sniff_scp(head: bytes) -> bool:
    """True for SCP-ECG: section 0 (the pointer section) first, tagged ``SCPECG``."""
    return len(head) >= 22 and head[8:10] == b"\x00\x00" and head[16:22] == b"SCPECG"


def sniff_dicom(head: bytes) -> bool:
    """True for a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    return head[128:132] == b"DICM"


# ---------------------------------------------------------------------------------------------- ecgdatakit


def _ecgdatakit_parser(path: Path, module: str, name: str, fmt: str) -> Any:
    try:
        import importlib

        return getattr(importlib.import_module(f"ecgdatakit.parsing.parsers.{module}"), name)
    except ImportError:
        raise ECGReadError(path, f"reading {fmt} needs ecgdatakit: {_INSTALL}") from None


def _lead_rows(path: Path, leads: list[Any], what: str) -> tuple[np.ndarray, list[str], float] | None:
    """Stack ecgdatakit leads into millivolt rows; None when there are none."""
    if not leads:
        return None
    rows, names, rates = [], [], set()
    for lead in leads:
        try:
            samples = np.asarray(lead.samples, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ECGReadError(path, f"{what} lead {lead.label} holds values that are not numbers"
                               + library_detail(exc)) from None
        if samples.ndim != 1:
            raise ECGReadError(path, f"{what} lead {lead.label} is not a sequence of samples")
        if lead.is_raw:
            if not lead.resolution_unit or not lead.resolution:
                raise ECGReadError(path, f"{what} lead {lead.label} has no amplitude resolution: units unknown")
            with np.errstate(over="ignore", invalid="ignore"):  # beyond float range: inf, refused later
                samples = samples * lead.resolution + lead.offset
            unit = lead.resolution_unit
        else:
            unit = lead.units
        with np.errstate(over="ignore", invalid="ignore"):
            rows.append(samples * unit_to_mv(unit or "", path))
        names.append(str(lead.label))
        try:
            rates.add(float(lead.sampling_rate))
        except (TypeError, ValueError):
            raise ECGReadError(path, f"{what} lead {lead.label} has no sampling rate "
                                     f"(got {lead.sampling_rate!r})") from None
    lengths = {row.size for row in rows}
    if len(lengths) != 1:
        raise ECGReadError(path, f"{what} leads have different lengths {sorted(lengths)}: truncated file?")
    if len(rates) != 1:
        raise ECGReadError(path, f"{what} leads have different sampling rates {sorted(rates)}")
    return np.stack(rows), names, rates.pop()


def _patient(info: Any) -> dict[str, Any]:
    sex = sex_or_unknown(getattr(info, "sex", ""))
    patient: dict[str, Any] = {"pid": str(getattr(info, "patient_id", "") or "").strip(), "sex": sex}
    for key, attr in (("age", "age"), ("height_cm", "height"), ("weight_kg", "weight")):
        value = getattr(info, attr, None)
        patient[key] = float(value) if isinstance(value, int | float) else float("nan")
    return patient


def _measurements(global_measurements: Any) -> dict[str, float]:
    out = {}
    for attr, name in _MEASUREMENT_NAMES.items():
        value = getattr(global_measurements, attr, None)
        if isinstance(value, int | float):
            out[name] = float(value)
    return out


_DAMAGE = {
    "GE MUSE XML": "malformed XML, or a waveform or measurement element that is damaged or cut off",
    "HL7 aECG": "malformed XML, or a sequence, scale or digits element that is damaged or cut off",
    "SCP-ECG": "a section pointer, length or Huffman-coded lead is damaged, or the file is truncated",
    "Philips Sierra XML": "malformed XML, or an XLI-compressed or plain waveform block that is damaged or cut off",
}
"""What a decode failure means for each format, in the package's words (the library's text follows as detail)."""


def _read_with_ecgdatakit(
    path: str | Path,
    fmt: str,
    module: str,
    parser_name: str,
    sniff: Callable[[bytes], bool],
    check_crc: bool,
    trim: Callable[[np.ndarray], np.ndarray] | None = None,
) -> ECG:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except OSError as exc:
        raise ECGReadError(path, f"cannot open file ({exc.strerror})") from None
    if not sniff(head):
        raise ECGReadError(path, f"not a {fmt} file (its first bytes do not match the format)")
    parser = _ecgdatakit_parser(path, module, parser_name, fmt)
    from ecgdatakit.exceptions import ChecksumWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            record = parser().parse(path)
        except MemoryError:
            raise ECGReadError(path, f"the {fmt} file declares more data than one ECG holds (a damaged size field)"
                               ) from None
        except Exception as exc:  # the library's own errors and the bare ones a damaged file provokes
            raise ECGReadError(path, f"the {fmt} content does not decode: {_DAMAGE[fmt]}"
                               + library_detail(exc)) from None
    for warning in caught:
        if issubclass(warning.category, ChecksumWarning) and check_crc:
            raise ECGReadError(path, f"{fmt} checksum mismatch ({warning.message}): the file is corrupt "
                                     "(pass check_crc=False to read it anyway)")
        warnings.warn(f"{path}: {warning.message}", warning.category, stacklevel=3)

    rhythm = _lead_rows(path, list(record.leads), "rhythm")
    if rhythm is None:
        raise ECGReadError(path, f"the {fmt} file holds no waveform leads")
    signal, names, fs = rhythm
    if trim is not None:
        signal = trim(signal)
    median = _lead_rows(path, list(record.median_beats), "median beat")
    return ecg_from_rows(
        path, signal, names, fs,
        median=median[0] if median else None, median_leads=median[1] if median else None,
        median_fs=median[2] if median else None,
        measurements=_measurements(record.measurements), patient=_patient(record.patient),
    )


def read_muse(path: str | Path, check_crc: bool = True) -> ECG:
    """Read a GE MUSE XML export (rhythm strip, median beats, measurements); III, aVR, aVL, aVF are derived.

    Raises:
        ECGReadError: not MUSE XML, malformed or truncated XML, CRC mismatch, or invalid samples.
    """
    return _read_with_ecgdatakit(path, "GE MUSE XML", "ge_muse_xml", "GEMuseXMLParser", sniff_muse, check_crc)


def read_hl7_aecg(path: str | Path) -> ECG:
    """Read an HL7 annotated ECG (aECG) XML file (rhythm series and, when present, the median-beat series).

    Raises:
        ECGReadError: not HL7 aECG, malformed or truncated XML, or invalid samples.
    """
    return _read_with_ecgdatakit(path, "HL7 aECG", "hl7_aecg", "HL7aECGParser", sniff_hl7_aecg, True)


def read_scp(path: str | Path, check_crc: bool = True) -> ECG:
    """Read an SCP-ECG file (EN 1064 / ISO 11073-91064), rhythm data and reference (median) beat.

    Raises:
        ECGReadError: not SCP-ECG, a section that does not decode, CRC mismatch, or invalid samples.
    """
    return _read_with_ecgdatakit(path, "SCP-ECG", "scp_ecg", "SCPECGParser", sniff_scp, check_crc)


def _trim_calibration(signal: np.ndarray) -> np.ndarray:
    """Drop the tail where every lead holds the same value (zero padding and the 1 mV calibration pulse)."""
    if signal.shape[0] < 2:
        return signal
    differs = np.flatnonzero(np.any(signal != signal[:1], axis=0))
    end = int(differs[-1]) + 1 if differs.size else signal.shape[1]
    return signal[:, :end]


def read_philips_sierra(path: str | Path) -> ECG:
    """Read Philips Sierra XML (PageWriter, TraceMasterVue, HeartStart; XLI-compressed or plain).

    The parsed waveforms last 11 s and end with zero padding and a 1 mV calibration pulse shared by every lead;
    that tail is dropped so that the limb leads keep Einthoven's relation.

    Raises:
        ECGReadError: not Sierra XML, malformed XML, an XLI block that does not decode, or invalid samples.
    """
    return _read_with_ecgdatakit(path, "Philips Sierra XML", "sierra_xml", "SierraXMLParser", sniff_sierra, True,
                                 trim=_trim_calibration)


# --------------------------------------------------------------------------------------------------- DICOM


def _dicom_lead_name(channel: Any) -> str:
    source = channel.ChannelSourceSequence[0]
    code = str(getattr(source, "CodeValue", "") or "")
    match = re.fullmatch(r"(?:5\.6\.3-9-|2:)(\d+)", code.strip())
    if match and int(match.group(1)) in _SCPECG_LEAD_CODES:
        return _SCPECG_LEAD_CODES[int(match.group(1))]
    meaning = str(getattr(source, "CodeMeaning", "") or "")
    return re.sub(r"\s*\(.*\)\s*$", "", meaning).strip()


_DICOM_INTERPRETATION = {8: ("SB", "UB", "MB", "AB"), 16: ("SS", "US"), 32: ("SL", "UL"), 64: ("SV", "UV")}
"""WaveformSampleInterpretation values pydicom decodes for each WaveformBitsAllocated (PS3.3 C.10.9.1.5)."""


def _dicom_layout(path: Path, group: Any, index: int) -> None:
    """Check a multiplex group's declared layout against its data before pydicom decodes it."""
    what = f"DICOM waveform group {index + 1}"
    try:
        channels = int(group.get("NumberOfWaveformChannels"))
        samples = int(group.get("NumberOfWaveformSamples"))
        bits = int(group.get("WaveformBitsAllocated"))
        fs = float(group.get("SamplingFrequency"))
    except (TypeError, ValueError):
        raise ECGReadError(path, f"unknown DICOM waveform layout: {what} lacks a valid channel count, sample "
                                 "count, bits allocated or sampling frequency") from None
    interpretation = str(group.get("WaveformSampleInterpretation", "") or "")
    if bits not in _DICOM_INTERPRETATION or interpretation not in _DICOM_INTERPRETATION[bits]:
        raise ECGReadError(path, f"unknown DICOM waveform layout: {what} stores {bits}-bit samples as "
                                 f"{interpretation!r}")
    if channels < 1 or samples < 1:
        raise ECGReadError(path, f"{what} says {channels} channels of {samples} samples: no waveform")
    check_fs(path, fs, what)
    check_size(path, channels, samples, fs)
    definitions = group.get("ChannelDefinitionSequence") or []
    if len(definitions) != channels:
        raise ECGReadError(path, f"{what} says {channels} channels but defines {len(definitions)}")
    data = group.get("WaveformData")
    held = len(data) * 8 // (bits * channels) if data is not None else 0
    if held < samples:
        raise ECGReadError(path, f"the file says {samples} samples per lead but holds {held} ({what}): "
                                 "truncated file?")


def _dicom_group(path: Path, ds: Any, index: int) -> tuple[np.ndarray, list[str], float]:
    group = ds.WaveformSequence[index]
    _dicom_layout(path, group, index)
    names, scales = [], []
    for number, channel in enumerate(group.ChannelDefinitionSequence):
        names.append(_dicom_lead_name(channel))
        units = channel.get("ChannelSensitivityUnitsSequence")
        if channel.get("ChannelSensitivity") is None or not units:
            raise ECGReadError(path, f"DICOM channel {number + 1} ({names[-1]}) has no sensitivity: units unknown")
        scales.append(unit_to_mv(str(units[0].CodeValue), path))
    values = np.asarray(ds.waveform_array(index), dtype=np.float64)  # sensitivity, correction and baseline applied
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ECGReadError(path, f"DICOM waveform group {index} does not hold {len(names)} channels")
    return values.T * np.asarray(scales)[:, None], names, float(group.SamplingFrequency)


def _dicom_patient(ds: Any) -> dict[str, Any]:
    sex = sex_or_unknown(ds.get("PatientSex", ""))
    age = str(ds.get("PatientAge", "") or "")
    match = re.fullmatch(r"(\d{1,3})([DWMY])", age.strip())
    divisor = {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}
    size, weight = ds.get("PatientSize"), ds.get("PatientWeight")
    return {
        "pid": str(ds.get("PatientID", "") or "").strip(),
        "age": float(match.group(1)) / divisor[match.group(2)] if match else float("nan"),
        "sex": sex,
        "height_cm": float(size) * 100.0 if size not in (None, "") else float("nan"),
        "weight_kg": float(weight) if weight not in (None, "") else float("nan"),
    }


def _dicom_measurements(ds: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in ds.get("WaveformAnnotationSequence", None) or []:
        names = item.get("ConceptNameCodeSequence")
        if not names or item.get("NumericValue") is None:
            continue
        key = _DICOM_MEASUREMENTS.get(str(names[0].get("CodeMeaning", "")).strip().lower())
        if key and key not in out:
            value = item.NumericValue
            try:
                out[key] = float(value)
            except TypeError:  # a multi-valued NumericValue: the first value is the measurement
                out[key] = float(value[0])
    return out


def read_dicom(path: str | Path) -> ECG:
    """Read a DICOM ECG waveform (12-lead, general ECG): the original rhythm group and the median-beat group.

    Raises:
        ECGReadError: not DICOM, no waveform, unknown channel units, or invalid samples.
    """
    path = Path(path)
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:
        raise ECGReadError(path, f"reading DICOM needs pydicom: {_INSTALL}") from None
    try:
        ds = pydicom.dcmread(path)
        groups = list(ds.get("WaveformSequence", None) or [])
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except InvalidDicomError as exc:
        raise ECGReadError(path, f"not a DICOM file ({exc})") from None
    except Exception as exc:  # pydicom raises bare errors on truncated or damaged data elements
        raise ECGReadError(path, "the DICOM data elements do not decode: a tag, length or value representation "
                                 "is damaged, or the file is truncated" + library_detail(exc)) from None
    if not groups:
        raise ECGReadError(path, "the DICOM file holds no WaveformSequence: not an ECG waveform object")

    def label(i: int) -> str:
        return f"{groups[i].get('MultiplexGroupLabel', '') or ''} {groups[i].get('WaveformOriginality', '')}".upper()

    rhythm = next((i for i in range(len(groups)) if "MEDIAN" not in label(i) and "ORIGINAL" in label(i)), 0)
    median_index = next((i for i in range(len(groups)) if i != rhythm and
                         ("MEDIAN" in label(i) or "DERIVED" in label(i))), None)
    try:
        signal, names, fs = _dicom_group(path, ds, rhythm)
        median = _dicom_group(path, ds, median_index) if median_index is not None else None
        measurements = _dicom_measurements(ds)
        patient = _dicom_patient(ds)
    except ECGReadError:
        raise
    except Exception as exc:  # damaged sequences surface as AttributeError/KeyError/ValueError inside pydicom
        raise ECGReadError(path, "unknown DICOM waveform layout: a channel definition, sensitivity or annotation "
                                 "is missing or damaged" + library_detail(exc)) from None
    return ecg_from_rows(
        path, signal, names, fs,
        median=median[0] if median else None, median_leads=median[1] if median else None,
        median_fs=median[2] if median else None, measurements=measurements, patient=patient,
    )
