"""GE CardioSoft resting-ECG XML, the format of UK Biobank field 20205.

The file holds a 10 s rhythm strip (``StripData``), the device's median beats
(``RestingECGMeasurements/MedianSamples``), per-lead and global 12SL measurements and ``PatientInfo``.
Samples are integers in ``Resolution`` microvolts per LSB. XML that could declare entities is parsed with
``defusedxml`` (no entity expansion, no external entities); a plain document, with nothing to refuse, with the
standard library's C parser (see :func:`_parse_xml`).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from aiecg.conventions import sex_or_unknown
from aiecg.ecg import ECG, STANDARD_LEADS, normalise_lead_name
from aiecg.errors import ECGReadError, ECGValidationError
from aiecg.files import atomic_write_bytes
from aiecg.io.checks import check_fs, check_plausible

SUFFIXES = (".xml",)
ROOT_TAG = "CardiologyXML"

GLOBAL_MEASUREMENTS = (
    "VentricularRate", "PQInterval", "PDuration", "QRSDuration", "QTInterval", "QTCInterval",
    "RRInterval", "PPInterval", "SokolovLVHIndex", "PAxis", "RAxis", "TAxis", "QRSNum",
    "POnset", "POffset", "QOnset", "QOffset", "TOffset",
)
"""Global measurements kept from ``RestingECGMeasurements`` (ms, bpm, mV or degrees as the file says)."""


MAX_XML_BYTES = 64 * 2**20
"""The largest CardioSoft file read (a real 10 s export is ~0.5 MB)."""


_DECLARATION = re.compile(rb"<\?xml[^>]*?\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]*)["']""")
_ASCII_ENCODINGS = {b"iso-8859-1", b"utf-8", b"us-ascii"}


def _parse_xml(data: bytes) -> ET.Element:
    """The document's root element.

    A document with a ``!`` anywhere could hold markup declarations (``<!DOCTYPE``, ``<!ENTITY``, comments, CDATA):
    defusedxml reads it, refusing entity declarations and external references. Any other document, in an encoding
    where ``<!`` is those two bytes (ISO-8859-1, the CardioSoft export's, UTF-8, US-ASCII), has nothing for
    defusedxml to refuse, and the standard library's C parser reads it: the same expat, the same tree and error
    messages, without a pure-Python handler per element (a quarter of the parse of a real UK Biobank file). The
    test for ``!`` is a byte search; one for ``<!`` would cost more than it saves.
    """
    if data.startswith(b"<?xml") and b"!" not in data:
        declaration = _DECLARATION.match(data)
        if declaration is not None:
            encoding = _ENCODING.search(declaration.group())
            if (b"encoding" not in declaration.group() if encoding is None
                    else encoding.group(1).lower() in _ASCII_ENCODINGS):
                return ET.fromstring(data)
    return SafeET.fromstring(data)


def sniff(head: bytes) -> bool:
    """True when the first bytes of a file look like a CardioSoft export."""
    return b"<CardiologyXML" in head


def _float_or_nan(text: str | None) -> float:
    try:
        return float(text) if text is not None and text.strip() else math.nan
    except ValueError:
        return math.nan


_LEAD_NAMES: dict[str, str] = {}
"""Lead labels already normalised (the same 12 in every file), at most 256 of them."""


def _lead_name(label: str) -> str:
    """:func:`normalise_lead_name` of ``label``, remembered (ECGValidationError for a label it refuses)."""
    name = _LEAD_NAMES.get(label)
    if name is None:
        name = normalise_lead_name(label)
        if len(_LEAD_NAMES) < 256:
            _LEAD_NAMES[label] = name
    return name


BATCH_BYTES = 64 * 1024
"""Leads whose texts together are at most this long are parsed in one vectorised pass (all 12 median beats, the
strip leads three or four at a time): fewer numpy calls, while every temporary array stays small. Measured on 200
synthetic files (``benchmarks/cardiosoft_reader_speed.py`` setup): 32 KiB 2.14, 64 KiB 1.93, 96 KiB 2.30,
128 KiB 2.88 CPU ms per file; past ~100 KiB each temporary array costs more than the calls saved."""


_ACCUMULATOR = ((4, np.uint16), (9, np.uint32), (15, np.uint64))
"""The narrowest integer type that holds every number of at most so many digits."""


def _integer_values(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The values of clean integer sample text and the offset of each number's last digit, or None (see
    :func:`_integer_samples`).

    Every check and the digit sums are elementwise passes over the bytes (run ``k`` marks the bytes that end k + 1
    digits in a row); only the numbers' last digits are turned into indices, once.
    """
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    b = np.frombuffer(raw, dtype=np.uint8)
    if b.size == 0:
        return None
    digit = b - np.uint8(48)  # wraps: non-digits become >= 10
    is_digit = digit < 10
    minus = b == 45
    n_minus = np.count_nonzero(minus)
    separator = b == 44
    separator |= b == 10
    separator |= b == 9
    n_digits = np.count_nonzero(is_digit)
    if not n_digits:
        return None  # no number at all
    rest = b.size - n_digits - n_minus - np.count_nonzero(separator)
    blanks = np.count_nonzero(b == 32) + np.count_nonzero(b == 13) if rest else 0
    if blanks != rest:
        return None  # a character other than digits, '-', separators and blanks
    if n_minus and (minus[-1] or np.count_nonzero(minus[:-1] & ~is_digit[1:])
                    or np.count_nonzero(minus[1:] & is_digit[:-1])):
        return None  # a '-' not directly before the first digit of a number (a lone '-', '1-2', '--1', '1-')
    runs = [is_digit]  # runs[k][i]: bytes i .. i + k are all digits
    while np.any(run := runs[-1][1:] & is_digit[: -len(runs)]):
        if len(runs) == 15:
            return None  # more than 15 digits: not exact in float64, the general parser decides
        runs.append(run)
    ends = is_digit.copy()
    ends[:-1] &= ~is_digit[1:]
    last = ends.nonzero()[0]  # (nonzero of a bool array is the fast one)
    if blanks and last.size > 1:  # neighbouring numbers need a separator between them, not just a blank
        starts = is_digit.copy()
        starts[1:] &= ~is_digit[:-1]
        starts = starts.nonzero()[0]
        starts -= minus[starts - 1]  # a number starts at its sign (starts - 1 = -1: a text starting with a digit)
        running = np.cumsum(separator, dtype=np.int32)
        if np.any(running[starts[1:] - 1] == running[last[:-1]]):
            return None
    kind = next(kind for digits, kind in _ACCUMULATOR if len(runs) <= digits)
    total = (digit * is_digit).astype(kind)
    negative = np.zeros(b.size, dtype=bool) if n_minus else None
    for k, run in enumerate(runs):
        if k:  # the digit k places before the end of a run, times 10**k: exact integer sums
            total[k:] += (digit[:-k] * run) * kind(10**k)
        if negative is not None:  # a '-' just before the run
            negative[k + 1:] |= run[1:] & minus[: b.size - k - 1]
    values = total[last].astype(np.float64)
    if negative is not None:
        np.negative(values, out=values, where=negative[last])
    return values, last


def _integer_samples(text: str) -> np.ndarray | None:
    """Vectorised parse of integer sample text (``-4,-2,-2,...``, commas, tabs or newlines between values).

    Works on the bytes with numpy (no Python object per sample). Returns None whenever the text is anything but
    clean integers of at most 15 digits (exact in float64) separated as :func:`_parse_samples_slow` separates them
    (a decimal point, an exponent, a stray sign, two numbers in one field, ...), so the general parser decides
    those: same values, same errors.
    """
    parsed = _integer_values(text)
    return None if parsed is None else parsed[0]


def _batch_samples(texts: list[str]) -> list[np.ndarray] | None:
    """:func:`_integer_samples` of each text from one pass over the texts joined by commas, or None when any of
    them is not clean integer text (a comma between texts keeps every number, and every check, inside its text)."""
    parsed = _integer_values(",".join(texts))
    if parsed is None:
        return None
    values, last = parsed
    offsets = np.cumsum([0] + [len(text) + 1 for text in texts])
    cuts = np.searchsorted(last, offsets)
    if np.any(np.diff(cuts) == 0):
        return None  # a text without a number
    return [values[a:b] for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist())]


def _sample_rows(texts: list[str | None]) -> list[np.ndarray | None]:
    """The vectorised parse of each lead's text, None where the general parser must decide. Short texts go through
    :func:`_batch_samples` in groups of up to ``BATCH_BYTES`` (one pass instead of one per lead), long ones alone."""
    rows: list[np.ndarray | None] = [None] * len(texts)
    groups: list[list[int]] = [[]]
    size = 0
    for i, text in enumerate(texts):
        if not text:
            continue
        if len(text) > BATCH_BYTES:
            rows[i] = _integer_samples(text)
            continue
        if size + len(text) > BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += len(text) + 1
    for group in groups:
        batch = _batch_samples([texts[i] for i in group]) if len(group) > 1 else None
        for i, row in zip(group, batch or [_integer_samples(texts[i]) for i in group]):
            rows[i] = row
    return rows


def _parse_samples_slow(text: str | None, path: Path, lead: str, section: str) -> np.ndarray:
    values = (text or "").replace("\n", ",").replace("\t", ",").split(",")
    values = [v for v in (s.strip() for s in values) if v]
    if not values:
        raise ECGReadError(path, f"{section} lead {lead} is empty")
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        raise ECGReadError(path, f"{section} lead {lead} holds a value that is not a number") from None


def _waveforms(section: ET.Element, path: Path, name: str) -> tuple[np.ndarray, tuple[str, ...], float]:
    fs = _float_or_nan(section.findtext("SampleRate"))
    if not (fs > 0):
        raise ECGReadError(path, f"{name} has no valid SampleRate (got {section.findtext('SampleRate')!r})")
    check_fs(path, fs, name)
    resolution = _float_or_nan(section.findtext("Resolution"))
    if not (resolution > 0):
        raise ECGReadError(path, f"{name} has no valid Resolution in uV per LSB")
    elements = section.findall("WaveformData")
    texts = [element.text for element in elements]
    leads, rows = [], []
    for element, text, fast in zip(elements, texts, _sample_rows(texts)):
        label = element.get("lead", "")
        try:
            leads.append(_lead_name(label))
        except ECGValidationError as exc:
            raise ECGReadError(path, f"{name}: {exc}") from None
        rows.append(fast if fast is not None else _parse_samples_slow(text, path, label, name))
    if not rows:
        raise ECGReadError(path, f"{name} has no WaveformData")
    lengths = {len(row) for row in rows}
    if len(lengths) != 1:
        raise ECGReadError(path, f"{name} leads have different lengths {sorted(lengths)}: truncated file?")
    declared = section.findtext("ChannelSampleCountTotal")
    if declared and declared.strip().isdigit() and int(declared) != rows[0].size:
        raise ECGReadError(
            path, f"{name} declares {declared} samples per lead but holds {rows[0].size}: truncated file?"
        )
    declared_leads = section.findtext("NumberOfLeads")
    if declared_leads and declared_leads.strip().isdigit() and int(declared_leads) != len(rows):
        raise ECGReadError(path, f"{name} declares {declared_leads} leads but holds {len(rows)}")
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 becomes inf, refused by ECG
        signal = (np.stack(rows) * (resolution / 1000.0)).astype(np.float32)
    return signal, tuple(leads), fs


def _lead_measurements(table: ET.Element | None) -> dict[str, dict[str, float]]:
    if table is None:
        return {}
    order = [_lead_name(x) for x in (table.findtext("LeadOrder") or "").split(",") if x.strip()]
    result: dict[str, dict[str, float]] = {}
    for element in table:
        if element.tag == "LeadOrder":
            continue
        values = [_float_or_nan(v) for v in (element.text or "").split(",")]
        if len(values) == len(order):
            result[element.tag] = dict(zip(order, values))
    return result


def _patient(root: ET.Element) -> dict[str, Any]:
    info = root.find("PatientInfo")
    if info is None:
        return {}
    gender = (info.findtext("Gender") or "").strip().upper()
    return {
        "pid": (info.findtext("PID") or "").strip(),
        "age": _float_or_nan(info.findtext("Age")),
        "sex": sex_or_unknown(gender),
        "height_cm": _float_or_nan(info.findtext("Height")),
        "weight_kg": _float_or_nan(info.findtext("Weight")),
    }


def read_cardiosoft(path: str | Path) -> ECG:
    """Read a CardioSoft XML file into an :class:`ECG` (rhythm strip, vendor median beat, measurements).

    Raises:
        ECGReadError: the file is missing, not CardioSoft XML, truncated, or holds invalid samples.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_XML_BYTES:
            raise ECGReadError(path, f"the file is {size:,} bytes; a CardioSoft export of one ECG is under "
                                     f"{MAX_XML_BYTES // 2**20} MB")
        root = _parse_xml(path.read_bytes())
    except FileNotFoundError:
        raise ECGReadError(path, "file not found") from None
    except OSError as exc:
        raise ECGReadError(path, f"cannot open file ({exc.strerror})") from None
    except (ET.ParseError, DefusedXmlException, UnicodeError, ValueError, LookupError) as exc:
        raise ECGReadError(path, f"not well-formed XML ({exc}); the file may be truncated") from None
    if root.tag != ROOT_TAG:
        raise ECGReadError(path, f"root element is <{root.tag}>, not <{ROOT_TAG}>: not a CardioSoft export")
    strip = root.find("StripData")
    if strip is None:
        raise ECGReadError(path, "no <StripData> rhythm strip")
    signal, leads, fs = _waveforms(strip, path, "StripData")

    resting = root.find("RestingECGMeasurements")
    measurements: dict[str, Any] = {}
    lead_measurements: dict[str, dict[str, float]] = {}
    median, median_fs = None, None
    if resting is not None:
        for name in GLOBAL_MEASUREMENTS:
            element = resting.find(name)
            if element is not None:
                measurements[name] = _float_or_nan(element.text)
        try:
            lead_measurements = _lead_measurements(resting.find("MeasurementTable"))
        except ECGValidationError as exc:
            raise ECGReadError(path, f"MeasurementTable: {exc}") from None
        section = resting.find("MedianSamples")
        if section is not None:
            median_raw, median_leads, median_fs = _waveforms(section, path, "MedianSamples")
            if set(median_leads) != set(leads):
                raise ECGReadError(path, f"MedianSamples leads {median_leads} differ from StripData {leads}")
            median = median_raw[[median_leads.index(lead) for lead in leads]]
    try:
        ecg = ECG.from_array(
            signal, leads, fs, record_id=path.stem, median=median, median_fs=median_fs,
            measurements=measurements, lead_measurements=lead_measurements,
            patient=_patient(root), source=str(path),
        )
    except ECGValidationError as exc:
        raise ECGReadError(path, str(exc)) from None
    return check_plausible(ecg, path)


def _format_samples(values: np.ndarray, per_line: int = 250) -> str:
    lines = [",".join(map(str, values[i : i + per_line].tolist())) for i in range(0, values.size, per_line)]
    return "\n\t\t\t" + ",\n\t\t\t".join(lines) + "\n\t\t"


def _add(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = "" if isinstance(text, float) and math.isnan(text) else str(text)
    return element


def _add_waveforms(section: ET.Element, signal_mv: np.ndarray, leads: tuple[str, ...], resolution_uv: float) -> None:
    quantised = np.rint(np.asarray(signal_mv, dtype=np.float64) * 1000.0 / resolution_uv).astype(np.int64)
    for lead, row in zip(leads, quantised):
        _add(section, "WaveformData", _format_samples(row), lead=lead)


def write_cardiosoft(
    path: str | Path,
    ecg: ECG,
    *,
    patient: Mapping[str, Any] | None = None,
    measurements: Mapping[str, float] | None = None,
    lead_measurements: Mapping[str, Mapping[str, float]] | None = None,
    resolution_uv: float = 5.0,
) -> Path:
    """Write an ECG in the CardioSoft XML layout of UK Biobank field 20205.

    The element structure follows the real V6.73 export (``PatientInfo``, ``RestingECGMeasurements`` with
    ``MeasurementTable`` and ``MedianSamples``, ``StripData``). Samples are rounded to ``resolution_uv``
    microvolts per LSB, so a round trip is exact within half an LSB. The file is written atomically.
    """
    path = Path(path)
    if tuple(ecg.leads) != STANDARD_LEADS:
        raise ECGValidationError(f"record {ecg.record_id!r}: CardioSoft files hold the 12 standard leads in order")
    patient = dict(patient or ecg.patient)
    measurements = dict(measurements or ecg.measurements)
    lead_measurements = dict(lead_measurements or ecg.lead_measurements)

    root = ET.Element(ROOT_TAG)
    _add(root, "ObservationType", "RestECG")
    info = _add(root, "PatientInfo")
    _add(info, "PID", patient.get("pid", ecg.record_id))
    _add(info, "Age", patient.get("age", ""), units="YEARS")
    _add(info, "Gender", {"male": "MALE", "female": "FEMALE"}.get(str(patient.get("sex", "")), "UNKNOWN"))
    _add(info, "Height", patient.get("height_cm", ""), units="CENTIMETERS")
    _add(info, "Weight", patient.get("weight_kg", ""), units="KILOGRAMS")
    _add(info, "PaceMaker", "no")

    resting = _add(root, "RestingECGMeasurements")
    _add(resting, "DiagnosisVersion", "aiecg synthetic")
    units = {"VentricularRate": "BPM", "SokolovLVHIndex": "mV", "PAxis": "degrees", "RAxis": "degrees",
             "TAxis": "degrees", "QRSNum": None}
    for name in GLOBAL_MEASUREMENTS:
        if name in measurements:
            unit = units.get(name, "ms")
            value = measurements[name]
            text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else (
                str(int(round(value))) if name != "SokolovLVHIndex" else f"{value:.2f}")
            _add(resting, name, text, **({"units": unit} if unit else {}))
    if lead_measurements:
        table = _add(resting, "MeasurementTable", Creation="aiecg")
        _add(table, "LeadOrder", ", ".join(STANDARD_LEADS))
        for name, by_lead in lead_measurements.items():
            values = [by_lead.get(lead, math.nan) for lead in STANDARD_LEADS]
            _add(table, name, ", ".join("" if math.isnan(v) else str(int(round(v))) for v in values),
                 units="uV" if name.endswith("Amplitude") else "ms")
    if ecg.median is not None:
        section = _add(resting, "MedianSamples")
        _add(section, "NumberOfLeads", len(ecg.leads))
        _add(section, "SampleRate", int(round(ecg.median_fs or ecg.fs)), units="Hz")
        _add(section, "ChannelSampleCountTotal", ecg.median.shape[1])
        _add(section, "Resolution", int(resolution_uv) if float(resolution_uv).is_integer() else resolution_uv,
             units="uVperLsb")
        _add(section, "FirstValid", 0, units="Sample")
        _add(section, "LastValid", ecg.median.shape[1] - 1, units="Sample")
        _add_waveforms(section, ecg.median, ecg.leads, resolution_uv)

    strip = _add(root, "StripData")
    _add(strip, "NumberOfLeads", len(ecg.leads))
    _add(strip, "SampleRate", int(round(ecg.fs)), units="Hz")
    _add(strip, "ChannelSampleCountTotal", ecg.n_samples)
    _add(strip, "Resolution", int(resolution_uv) if float(resolution_uv).is_integer() else resolution_uv,
         units="uVperLsb")
    _add_waveforms(strip, ecg.signal, ecg.leads, resolution_uv)

    ET.indent(root, space="\t")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, b'<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
                       + ET.tostring(root, encoding="ISO-8859-1", xml_declaration=False))
    return path
