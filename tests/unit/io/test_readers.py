"""The vendor, MATLAB and array readers on the real files in ../shared/data (and arrays made from them)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from aiecg.ecg import STANDARD_LEADS
from aiecg.errors import ECGReadError
from aiecg.io import detect_format, get_reader, list_readers, read_ecg
from aiecg.io.arrays import read_csv, read_npy, read_npz
from aiecg.io.matlab import SHIP_LEADS, read_matlab
from aiecg.io.vendor import read_dicom, read_hl7_aecg, read_muse, read_philips_sierra, read_scp
from aiecg.io.wfdb import read_wfdb

# The vendor formats need the optional 'formats' extra; WFDB, MATLAB, NumPy and CSV need nothing extra, so only the
# vendor tests skip (each naming what is missing), never the whole module.
_MISSING = [name for name in ("ecgdatakit", "pydicom") if importlib.util.find_spec(name) is None]
needs_vendor = pytest.mark.skipif(bool(_MISSING), reason=f"the vendor readers need the 'formats' extra: {_MISSING}")


def einthoven_uv(ecg) -> float:
    """max |III - (II - I)| in microvolts."""
    return float(np.abs(ecg.lead("III") - (ecg.lead("II") - ecg.lead("I"))).max() * 1000)


# file, format, shape, fs, median shape, median fs, max |III-(II-I)| in uV, (lead, first samples in mV)
VENDOR_FILES = [
    ("muse/MUSE_20200923_093504_79000_example.xml", "muse", (12, 5000), 500, (12, 600), 500, 0.01,
     ("I", [0.10736, 0.10736])),  # 22 LSB at 4.88 uV; III..aVF derived from the 8 stored leads
    ("hl7_aecg/subject1_0.xml", "hl7_aecg", (12, 5000), 500, (12, 599), 500, 0.01, ("V5", [0.0575, 0.0575])),
    ("dicom/example-DICOM1.dcm", "dicom", (12, 5000), 500, (12, 600), 500, 0.01, ("I", [0.0, 0.0, 0.02928])),
    ("dicom/example-DICOM2.dcm", "dicom", (12, 5000), 500, (12, 512), 500, 5.01, ("I", [-0.105, -0.105])),
    ("dicom/pydicom_waveform_ecg.dcm", "dicom", (12, 10000), 1000, (12, 1200), 1000, 0.01,
     ("I", [0.1, 0.08125, 0.0625])),
    ("scp/ECG_20070321_110542_191010101010.SCP", "scp", (12, 6000), 600, (12, 431), 600, 0.01,
     ("I", [0.01875, 0.0225, 0.02625])),
    ("scp/ECG_20170504_163507_123456789.SCP", "scp", (12, 6000), 600, (12, 453), 600, 0.01,
     ("I", [-0.045, -0.0525, -0.06])),
    ("scp/Example.scp", "scp", (12, 5000), 500, (12, 599), 500, 0.01, ("V5", [0.0575, 0.0575])),
    ("philips_sierra/129DYPRG.XML", "philips_sierra", (12, 5264), 500, None, None, 10.01,
     ("I", [0.24, 0.22, 0.20])),
    ("philips_sierra/2020-5-18_15-48-11.xml", "philips_sierra", (12, 5300), 500, (12, 1200), 1000, 0.01,
     ("I", [-0.01, -0.005, 0.0])),
]


@pytest.mark.parametrize("name, fmt, shape, fs, median_shape, median_fs, einthoven, first", VENDOR_FILES,
                         ids=[row[0] for row in VENDOR_FILES])
@needs_vendor
def test_vendor_files_read_as_12_standard_leads_in_millivolts(
    shared_data, name, fmt, shape, fs, median_shape, median_fs, einthoven, first
):
    path = shared_data / "formats" / name
    assert detect_format(path).name == fmt
    ecg = get_reader(fmt).read(path)
    assert ecg.signal.shape == shape and ecg.fs == fs and ecg.leads == STANDARD_LEADS
    assert ecg.signal.dtype == np.float32 and ecg.record_id == path.stem and ecg.source == str(path)
    lead, values = first
    np.testing.assert_allclose(ecg.lead(lead)[: len(values)], values, atol=1e-6)
    peak_to_peak = np.ptp(ecg.signal, axis=1)
    assert 0.2 < peak_to_peak.min() and peak_to_peak.max() < 5.0  # millivolts, not microvolts or LSB
    assert einthoven_uv(ecg) <= einthoven
    if median_shape is None:
        assert ecg.median is None
    else:
        assert ecg.median.shape == median_shape and ecg.median_fs == median_fs
        assert 0.1 < np.ptp(ecg.median, axis=1).max() < 5.0
        # the median beat obeys Einthoven too (Sierra's 1 uV median: within 20 uV)
        median_iii = ecg.median[2] - (ecg.median[1] - ecg.median[0])
        assert np.abs(median_iii).max() < 0.02
    np.testing.assert_array_equal(read_ecg(path).signal, ecg.signal)


@needs_vendor
def test_vendor_measurements_and_patient_are_kept(shared_data):
    formats = shared_data / "formats"
    muse = read_muse(formats / "muse" / "MUSE_20200923_093504_79000_example.xml")
    assert muse.measurements["VentricularRate"] == 56 and muse.measurements["QRSDuration"] == 94
    assert muse.measurements["PQInterval"] == 330 and muse.measurements["RAxis"] == -22
    assert muse.patient["sex"] == "male" and muse.patient["age"] == 40 and muse.patient["height_cm"] == 180
    dicom = read_dicom(formats / "dicom" / "example-DICOM2.dcm")
    assert dicom.measurements["QRSDuration"] == 92 and dicom.measurements["VentricularRate"] == 81
    assert dicom.patient["height_cm"] == pytest.approx(167.64, abs=0.01)
    assert read_dicom(formats / "dicom" / "pydicom_waveform_ecg.dcm").patient["age"] == 42
    hl7 = read_hl7_aecg(formats / "hl7_aecg" / "subject1_0.xml")
    assert hl7.measurements["QRSDuration"] == 120 and hl7.patient["age"] == 46
    sierra = read_philips_sierra(formats / "philips_sierra" / "2020-5-18_15-48-11.xml")
    assert sierra.measurements["QTcFridericia"] == 408 and sierra.measurements["QRSDuration"] == 102
    scp = read_scp(formats / "scp" / "ECG_20070321_110542_191010101010.SCP")
    assert scp.measurements["VentricularRate"] == 75 and scp.patient["weight_kg"] == 85


@needs_vendor
def test_hl7_and_scp_copies_of_the_same_ecg_agree(shared_data):
    """Example.scp and subject1_0.xml hold the same recording: two decoders, one answer."""
    scp = read_scp(shared_data / "formats" / "scp" / "Example.scp")
    hl7 = read_hl7_aecg(shared_data / "formats" / "hl7_aecg" / "subject1_0.xml")
    np.testing.assert_allclose(scp.signal, hl7.signal, atol=1e-6)


@needs_vendor
def test_sierra_calibration_tail_is_dropped(shared_data):
    ecg = read_philips_sierra(shared_data / "formats" / "philips_sierra" / "129DYPRG.XML")
    tail = ecg.signal[:, -50:]
    assert not np.all(tail == tail[:1])  # the shared zero/1 mV calibration tail is gone


@needs_vendor
def test_corrupt_scp_is_rejected_naming_file_and_reason(shared_data):
    path = shared_data / "formats" / "scp" / "demo.scp"
    assert detect_format(path).name == "scp"
    for read in (read_scp, read_ecg):
        with pytest.raises(ECGReadError, match="SCP-ECG.*invalid sample range") as info:
            read(path)
        assert info.value.path == str(path)


@pytest.mark.parametrize("folder, pattern, shape, fs", [
    ("ptbxl/records500", "*_hr.hea", (12, 5000), 500),
    ("ptbxl/records100", "*_lr.hea", (12, 1000), 100),
    ("cinc2021", "*.hea", (12, 5000), 500),
])
def test_wfdb_records_are_12_leads_in_millivolts(shared_data, folder, pattern, shape, fs):
    headers = sorted((shared_data / folder).glob(pattern))
    assert len(headers) >= 30
    ranges = []
    for header in headers:
        ecg = read_ecg(header)
        assert ecg.signal.shape == shape and ecg.fs == fs and ecg.leads == STANDARD_LEADS
        assert einthoven_uv(ecg) < 1.5  # 1 uV storage resolution
        ranges.append(np.ptp(ecg.signal, axis=1))
    ranges = np.concatenate(ranges)
    assert np.mean((ranges > 0.05) & (ranges < 10.0)) > 0.95  # a few flat or noisy leads in the challenge data


def test_challenge_mat_with_header_goes_to_wfdb(shared_data):
    mat = shared_data / "cinc2021" / "E07500.mat"
    via_mat = read_ecg(mat)
    via_header = read_wfdb(mat.with_suffix(".hea"))
    np.testing.assert_array_equal(via_mat.signal, via_header.signal)
    assert via_mat.patient == via_header.patient and via_mat.record_id == "E07500"


# ------------------------------------------------------------------------------------ SHIP-style MATLAB


@pytest.fixture(scope="module")
def real_record(shared_data):
    """A real PTB-XL record, the source of the array-format fixtures."""
    return read_ecg(shared_data / "ptbxl" / "records500" / "00841_hr.hea")


def ship_matrix_uv(ecg) -> np.ndarray:
    """15 x N int16 microvolts in SHIP's row order (X, Y, Z stand in as copies of V6, aVF, -V2)."""
    rows = [ecg.lead(n) for n in STANDARD_LEADS] + [ecg.lead("V6"), ecg.lead("aVF"), -ecg.lead("V2")]
    return np.rint(np.stack(rows) * 1000).astype(np.int16)


def test_ship_mat_reads_15_leads_with_default_arguments(tmp_path, real_record):
    path = tmp_path / "1234567.mat"
    scipy.io.savemat(path, {"H12": ship_matrix_uv(real_record), "HXYZ": ship_matrix_uv(real_record)[:3]})
    assert detect_format(path).name == "matlab"
    ecg = read_ecg(path)
    assert ecg.leads == SHIP_LEADS and ecg.signal.shape == (15, 5000) and ecg.fs == 500
    np.testing.assert_allclose(ecg.signal[:12], real_record.signal, atol=0.0006)  # 1 uV int16 rounding
    np.testing.assert_allclose(ecg.lead("Z"), -real_record.lead("V2"), atol=0.0006)
    assert einthoven_uv(ecg) <= 2.0


def test_mat_variable_order_rate_units_and_layout_are_arguments(tmp_path, real_record):
    eight = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II")
    matrix_mv = real_record.select(eight).T  # time first, in millivolts
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"ecg": matrix_mv, "median": matrix_mv[:600]})
    ecg = read_matlab(path, variable="ecg", leads=eight, fs=250.0, units="mV", median_variable="median")
    assert ecg.leads == STANDARD_LEADS and ecg.fs == 250 and ecg.signal.shape == (12, 5000)
    np.testing.assert_allclose(ecg.select(eight), real_record.select(eight), atol=1e-6)
    # III, aVR, aVL, aVF derived from I and II: PTB-XL stores each lead rounded to 1 uV
    np.testing.assert_allclose(ecg.signal, real_record.signal, atol=0.0016)
    assert ecg.median.shape == (12, 600)
    single = tmp_path / "single.mat"
    scipy.io.savemat(single, {"whatever": matrix_mv})
    assert read_matlab(single, variable=None, leads=eight, units="mV").signal.shape == (12, 5000)


@pytest.mark.parametrize("kwargs, content, reason", [
    ({}, {"other": np.zeros((15, 100))}, "no variable 'H12'"),
    ({}, {"H12": np.zeros((14, 100))}, "wrong lead count"),
    ({}, {"H12": np.full((15, 100), np.nan)}, "non-finite"),
    ({}, {"H12": np.zeros((15, 1))}, "empty"),
    ({"fs": 0.0}, {"H12": np.zeros((15, 100))}, "sampling rate must be > 0"),
    ({"units": "furlongs"}, {"H12": np.zeros((15, 100))}, "unknown signal unit"),
    ({"variable": None}, {"a": np.zeros((15, 100)), "b": np.zeros((15, 100))}, "cannot tell which variable"),
])
def test_bad_mat_files_raise_ecg_read_error(tmp_path, kwargs, content, reason):
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, content)
    with pytest.raises(ECGReadError, match=reason) as info:
        read_matlab(path, **kwargs)
    assert info.value.path == str(path)


def test_mat_v73_and_garbage_are_rejected(tmp_path):
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64" + b"\0" * 200)
    with pytest.raises(ECGReadError, match="v7.3"):
        read_matlab(v73)
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ECGReadError, match="not a readable MATLAB file"):
        read_ecg(garbage)


# ------------------------------------------------------------------------------------ NumPy and CSV


def test_npy_npz_csv_round_trips_of_a_real_record(tmp_path, real_record):
    leads = list(real_record.leads)
    np.save(tmp_path / "r.npy", real_record.signal)
    npy = read_npy(tmp_path / "r.npy", leads=leads, fs=500)
    np.testing.assert_array_equal(npy.signal, real_record.signal)

    np.save(tmp_path / "t.npy", (real_record.signal.T * 1000).astype(np.float32))  # time first, microvolts
    npy_t = read_npy(tmp_path / "t.npy", leads=leads, fs=500, units="uV")
    np.testing.assert_allclose(npy_t.signal, real_record.signal, atol=1e-6)

    np.savez(tmp_path / "r.npz", signal=real_record.signal * 1000, leads=np.array(leads), fs=500.0, units="uV",
             median=real_record.signal[:, :600] * 1000)
    assert detect_format(tmp_path / "r.npz").name == "npz"
    npz = read_ecg(tmp_path / "r.npz")
    np.testing.assert_allclose(npz.signal, real_record.signal, atol=1e-6)
    assert npz.fs == 500 and npz.leads == STANDARD_LEADS and npz.median.shape == (12, 600)

    eight = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    csv_path = tmp_path / "r.csv"
    body = np.column_stack([np.arange(5000) / 500, real_record.select(eight).T])
    np.savetxt(csv_path, body, delimiter=",", header=",".join(["time", *eight]), comments="", fmt="%.6f")
    assert detect_format(csv_path).name == "csv"
    from_csv = read_csv(csv_path, fs=500)
    assert from_csv.leads == STANDARD_LEADS  # the four limb leads derived from I and II
    np.testing.assert_allclose(from_csv.select(eight), real_record.select(eight), atol=1e-6)
    np.testing.assert_allclose(from_csv.signal, real_record.signal, atol=0.0016)


@pytest.mark.parametrize("write, call, reason", [
    (lambda p: np.save(p, np.zeros((12, 100))), lambda p: read_npy(p, fs=500), "no lead names"),
    (lambda p: np.save(p, np.zeros((12, 100))), lambda p: read_npy(p, leads=STANDARD_LEADS), "no sampling rate"),
    (lambda p: np.save(p, np.zeros((12, 100))), lambda p: read_ecg(p), "no lead names"),
    (lambda p: np.save(p, np.zeros((11, 100))), lambda p: read_npy(p, leads=STANDARD_LEADS, fs=500),
     "wrong lead count"),
    (lambda p: np.save(p, np.full((12, 100), np.inf)), lambda p: read_npy(p, leads=STANDARD_LEADS, fs=500),
     "non-finite"),
    (lambda p: np.save(p, np.zeros((12, 100))), lambda p: read_npy(p, leads=STANDARD_LEADS, fs=float("nan")),
     "sampling rate must be > 0"),
    (lambda p: np.save(p, np.zeros((12, 100))), lambda p: read_npy(p, leads=["I"] * 12, fs=500), "twice"),
    (lambda p: np.save(p, np.zeros((12, 100))), lambda p: read_npy(p, leads=["Q", *STANDARD_LEADS[1:]], fs=500),
     "unknown lead name"),
    (lambda p: np.savez(p, signal=np.zeros((12, 100)), leads=np.array(STANDARD_LEADS)), lambda p: read_npz(p),
     "no sampling rate"),
    (lambda p: np.savez(p, signal=np.zeros((12, 100)), leads=np.array(STANDARD_LEADS), fs=0),
     lambda p: read_npz(p), "sampling rate must be > 0"),
    (lambda p: np.savez(p, x=np.zeros((12, 100))), lambda p: read_npz(p), "no array 'signal'"),
    (lambda p: p.write_text("I,II\n1,2\n3\n"), lambda p: read_csv(p, fs=500), "different numbers of columns"),
    (lambda p: p.write_text("I,II\n1,2\n3,x\n"), lambda p: read_csv(p, fs=500), "not a number"),
    (lambda p: p.write_text("1,2\n3,4\n"), lambda p: read_csv(p, fs=500), "no header row"),
    (lambda p: p.write_text("I,II\n"), lambda p: read_csv(p, fs=500), "no samples"),
    (lambda p: p.write_text("I,II\n1,2\n3,4\n"), lambda p: read_csv(p), "no sampling rate"),
    (lambda p: p.write_text("I,II\n1,2\n"), lambda p: read_csv(p, fs=500), "empty"),
])
def test_bad_array_files_raise_ecg_read_error(tmp_path, write, call, reason):
    path = tmp_path / "bad"
    write(path)
    path = next(tmp_path.iterdir())  # np.save/np.savez add their suffix
    with pytest.raises(ECGReadError, match=reason):
        call(path)


# ------------------------------------------------------------------------------------ bad vendor files


@pytest.mark.parametrize("name", [
    "muse/MUSE_20200923_093504_79000_example.xml",
    "hl7_aecg/subject1_0.xml",
    "philips_sierra/2020-5-18_15-48-11.xml",
])
@needs_vendor
def test_truncated_vendor_xml_is_rejected(shared_data, tmp_path, name):
    data = (shared_data / "formats" / name).read_bytes()
    bad = tmp_path / Path(name).name
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ECGReadError) as info:
        read_ecg(bad)
    assert info.value.path == str(bad) and info.value.reason


@pytest.mark.parametrize("name, read", [
    ("muse/MUSE_20200923_093504_79000_example.xml", read_muse),
    ("hl7_aecg/subject1_0.xml", read_hl7_aecg),
    ("philips_sierra/129DYPRG.XML", read_philips_sierra),
])
@needs_vendor
def test_vendor_xml_entity_expansion_is_refused(shared_data, tmp_path, name, read):
    """A 'billion laughs' DOCTYPE must be refused, not expanded (defusedxml / disable_entities)."""
    text = (shared_data / "formats" / name).read_bytes()
    bomb = b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    start = text.index(b"?>") + 2 if text.lstrip().startswith(b"<?xml") else 0
    bad = tmp_path / Path(name).name
    bad.write_bytes(text[:start] + b"\n" + bomb + text[start:])
    with pytest.raises(ECGReadError, match="(?i)entit|DTD|not allowed|forbidden"):
        read(bad)


@needs_vendor
def test_mutated_vendor_files_fail_their_checksums(shared_data, tmp_path):
    data = bytearray((shared_data / "formats" / "scp" / "Example.scp").read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "bit.scp"
    bad.write_bytes(bytes(data))
    with pytest.raises(ECGReadError, match="checksum"):
        read_scp(bad)


@needs_vendor
def test_truncated_dicom_and_non_dicom_are_rejected(shared_data, tmp_path):
    data = (shared_data / "formats" / "dicom" / "example-DICOM2.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ECGReadError):
        read_dicom(cut)
    with pytest.raises(ECGReadError, match="not a DICOM file|DICOM data elements do not decode"):
        read_dicom(shared_data / "formats" / "scp" / "Example.scp")
    with pytest.raises(ECGReadError, match="not a GE MUSE XML file"):
        read_muse(shared_data / "formats" / "hl7_aecg" / "subject1_0.xml")


def test_missing_optional_library_gives_an_install_hint(shared_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ECGReadError, match=r"needs pydicom: pip install 'aiecg\[formats\]'"):
        read_dicom(shared_data / "formats" / "dicom" / "example-DICOM1.dcm")
    monkeypatch.setitem(sys.modules, "ecgdatakit.parsing.parsers.scp_ecg", None)
    with pytest.raises(ECGReadError, match=r"needs ecgdatakit: pip install 'aiecg\[formats\]'"):
        read_scp(shared_data / "formats" / "scp" / "Example.scp")


def test_every_format_is_registered():
    assert set(list_readers()) >= {"cardiosoft", "wfdb", "muse", "hl7_aecg", "philips_sierra", "scp", "dicom",
                                   "matlab", "npy", "npz", "csv"}
