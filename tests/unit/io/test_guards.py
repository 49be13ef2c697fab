"""Reader guards (issue 10): MATLAB structure checked before scipy, finiteness after float32, plausible rates and
lengths, .npz members read one at a time under a size cap, errors in the package's words; WFDB header comments
and suffix-less record paths (issue 11); CardioSoft's vectorised sample parser (issue 12)."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.errors import ECGReadError
from aiecg.io import cardiosoft, detect_format, read_ecg
from aiecg.io.arrays import read_csv, read_npy, read_npz
from aiecg.io.cardiosoft import _integer_samples, _parse_samples_slow, write_cardiosoft
from aiecg.io.checks import LIBRARY_MARK, MAX_FS, MIN_DURATION_S, MIN_FS
from aiecg.io.matlab import inspect_mat, read_matlab
from aiecg.io.wfdb import parse_comments, read_wfdb, write_wfdb

LIBRARY_WORDS = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")


def own_words(exc: ECGReadError) -> str:
    """The reason before any trailing library detail; it must carry no library exception name."""
    main = exc.reason.split(LIBRARY_MARK, 1)[0]
    assert not LIBRARY_WORDS.search(main), exc.reason
    return main


@pytest.fixture(scope="module")
def record(shared_data) -> ECG:
    return read_ecg(shared_data / "ptbxl" / "records500" / "00841_hr.hea")


# ------------------------------------------------------------------------------------------------ MATLAB


def _element_offset(data: bytes, mtype: int, after: int) -> int:
    """Offset of the first full (8-byte) v5 tag of type ``mtype`` at or after ``after``."""
    for pos in range(after, len(data) - 8, 8):
        if struct.unpack_from("<I", data, pos)[0] == mtype:
            return pos
    raise AssertionError(f"no element of type {mtype}")


def _ship_mat(path: Path, record: ECG) -> bytes:
    matrix = np.rint(record.signal[:12] * 1000).astype(np.int16)
    scipy.io.savemat(path, {"H12": np.vstack([matrix, matrix[:3]])}, do_compression=False)
    return path.read_bytes()


def test_mat_data_type_out_of_range_is_refused_before_scipy(tmp_path, record):
    data = bytearray(_ship_mat(tmp_path / "ok.mat", record))
    assert read_matlab(tmp_path / "ok.mat").signal.shape == (15, 5000)
    # the real part of H12 is miINT16 (3): a 2-byte change makes it type 0x7F03, which scipy indexes unchecked
    where = _element_offset(bytes(data), 3, 128 + 8 + 16 + 16 + 8)
    data[where + 1] = 0x7F
    bad = tmp_path / "bad_type.mat"
    bad.write_bytes(bytes(data))
    with pytest.raises(ECGReadError, match="unknown MATLAB data type 32515") as info:
        read_matlab(bad)
    own_words(info.value)
    # the same file in scipy's own hands: run in a child process, which may crash (the reason for the guard)
    child = subprocess.run([sys.executable, "-c", f"import scipy.io; scipy.io.loadmat({str(bad)!r})"],
                           capture_output=True, timeout=60)
    assert child.returncode != 0  # scipy 1.x dies with SIGSEGV (exit -11) on this file; never an array


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.__setitem__(slice(128 + 16, 128 + 17), b"\xee"), "unknown MATLAB class 238"),
    (lambda d: d.__setitem__(slice(128 + 16, 128 + 17), b"\x05"), "MATLAB sparse"),
    (lambda d: d.__setitem__(slice(128 + 4, 128 + 8), struct.pack("<I", 10**9)), "says 1000000000 bytes"),
    (lambda d: d.__setitem__(slice(128 + 32, 128 + 36), struct.pack("<i", 10**6)), "more than one ECG holds"),
    (lambda d: d.__setitem__(slice(126, 128), b"XX"), "unknown MAT-file version|endian indicator"),
    (lambda d: d.__delitem__(slice(5000, None)), "truncated"),
])
def test_damaged_mat_structure_is_refused_in_words(tmp_path, record, change, reason):
    data = bytearray(_ship_mat(tmp_path / "ok.mat", record))
    change(data)
    bad = tmp_path / "bad.mat"
    bad.write_bytes(bytes(data))
    with pytest.raises(ECGReadError, match=reason) as info:
        read_matlab(bad)
    assert info.value.path == str(bad)
    own_words(info.value)


def test_mat_v4_and_compressed_v5_are_walked(tmp_path, record):
    matrix = np.rint(record.signal * 1000).astype(np.int16)
    for fmt, compress in (("4", False), ("5", True)):
        path = tmp_path / f"m{fmt}.mat"
        scipy.io.savemat(path, {"ecg": matrix.astype(float), "note": "x"} if fmt == "5" else {"ecg": matrix},
                         format=fmt, do_compression=compress)
        variables = inspect_mat(path)
        assert {"name": "ecg", "class": 6, "shape": (12, 5000)} in variables
        ecg = read_matlab(path, variable=None, leads=STANDARD_LEADS, units="uV")
        np.testing.assert_allclose(ecg.signal, record.signal, atol=0.0006)
    v4 = bytearray((tmp_path / "m4.mat").read_bytes())
    v4[0:4] = struct.pack("<i", 4)  # precision code P=0, type T=4: not a v4 type
    (tmp_path / "bad4.mat").write_bytes(bytes(v4))
    with pytest.raises(ECGReadError, match="type code 4"):
        read_matlab(tmp_path / "bad4.mat", variable="ecg", leads=STANDARD_LEADS)


# ------------------------------------------------------------------------------------------------ values


def test_values_beyond_float32_are_refused_after_conversion(tmp_path):
    t = np.arange(2000) / 500
    body = np.column_stack([np.sin(t), np.cos(t)])
    body[100, 1] = 1e39  # finite in float64, inf in float32
    path = tmp_path / "big.csv"
    np.savetxt(path, body, delimiter=",", header="I,II", comments="")
    with pytest.raises(ECGReadError, match="non-finite samples .*float32") as info:
        read_csv(path, fs=500)
    own_words(info.value)
    with pytest.raises(Exception, match="non-finite"):
        ECG.from_array(np.full((1, 1000), 1e39), ["I"], 500.0)


def test_dicom_baseline_of_1e308_is_refused(shared_data, tmp_path):
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(shared_data / "formats" / "dicom" / "example-DICOM1.dcm")
    ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelBaseline = "1e308"
    path = tmp_path / "baseline.dcm"
    ds.save_as(path)
    with pytest.raises(ECGReadError, match="non-finite") as info:
        read_ecg(path)
    own_words(info.value)


def test_truncated_dicom_waveform_names_declared_and_held_samples(shared_data, tmp_path):
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(shared_data / "formats" / "dicom" / "example-DICOM1.dcm")
    group = ds.WaveformSequence[0]
    group.WaveformData = group.WaveformData[: 12 * 2 * 3000]
    path = tmp_path / "short.dcm"
    ds.save_as(path)
    with pytest.raises(ECGReadError, match="the file says 5000 samples per lead but holds 3000"):
        read_ecg(path)
    group.WaveformSampleInterpretation = "XX"
    ds.save_as(path)
    with pytest.raises(ECGReadError, match="unknown DICOM waveform layout"):
        read_ecg(path)


# ------------------------------------------------------------------------------------ rates and lengths


@pytest.mark.parametrize("fs, samples, reason", [
    (0.001, 5000, "implausible signal sampling rate 0.001 Hz"),
    (32.0, 5000, "implausible signal sampling rate 32 Hz"),
    (40_000.0, 200_000, "implausible"),
    (5000.001, 50_000, "not a whole number of Hz"),
    (500.0, 50, "lasts 0.1 s"),
    (500.0, 999, "less than the 2 s"),
])
def test_implausible_rates_and_lengths_are_refused_at_read_time(tmp_path, fs, samples, reason):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((12, samples), dtype=np.float32))
    with pytest.raises(ECGReadError, match=reason) as info:
        read_npy(path, leads=STANDARD_LEADS, fs=fs)
    own_words(info.value)


def test_the_limits_keep_every_real_rate(shared_data):
    assert MIN_FS <= 100 and MAX_FS >= 10_000 and MIN_DURATION_S <= 2.5
    low = read_ecg(shared_data / "ptbxl" / "records100" / "00841_lr.hea")
    assert low.fs == 100 and low.signal.shape == (12, 1000)
    fast = read_ecg(shared_data / "formats" / "dicom" / "pydicom_waveform_ecg.dcm")
    assert fast.fs == 1000


def test_cardiosoft_strip_rate_of_5000_001_hz_is_refused(cardiosoft_xml, tmp_path):
    text = cardiosoft_xml.read_text(encoding="iso-8859-1")
    strip = text.index("<StripData>")
    rate = text.index('<SampleRate units="Hz">500</SampleRate>', strip)
    bad = tmp_path / "rate.xml"
    bad.write_text(text[:rate] + '<SampleRate units="Hz">5000.001</SampleRate>'
                   + text[rate + len('<SampleRate units="Hz">500</SampleRate>'):], encoding="iso-8859-1")
    with pytest.raises(ECGReadError, match="StripData sampling rate 5000.001 Hz is not a whole number"):
        read_ecg(bad)


# ------------------------------------------------------------------------------------------------ .npz


def _fake_member(shape: tuple[int, ...], payload: bytes = b"\0" * 64) -> bytes:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + repr(shape) + ", }"
    header = header + " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def test_npz_reads_only_the_members_it_needs(tmp_path, record):
    path = tmp_path / "r.npz"
    np.savez(path, signal=record.signal, leads=np.array(record.leads), fs=500.0)
    with zipfile.ZipFile(path, "a") as archive:  # a member nobody asked for, whose header is garbage
        archive.writestr("junk.npy", b"not an array at all")
        archive.writestr("huge.npy", _fake_member((10**6, 10**6)))
    ecg = read_npz(path)
    np.testing.assert_array_equal(ecg.signal, record.signal)


@pytest.mark.parametrize("member, reason", [
    (_fake_member((12, 10**9)), r"declares shape \(12, 1000000000\)"),
    (_fake_member((12, 5000)), "truncated file"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': 'O', }", "damaged .npy header|holds object"),
])
def test_npz_member_size_is_checked_before_loading(tmp_path, member, reason):
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("signal.npy", member)
        archive.writestr("fs.npy", b"")
    with pytest.raises(ECGReadError, match=reason) as info:
        read_npz(path, leads=STANDARD_LEADS, fs=500)
    own_words(info.value)


def test_npy_header_is_checked_before_loading(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(_fake_member((12, 10**9)))
    with pytest.raises(ECGReadError, match="more than the"):
        read_npy(path, leads=STANDARD_LEADS, fs=500)


# ------------------------------------------------------------------------------------------------ WFDB


def test_wfdb_comments_in_both_physionet_styles_fill_the_patient(tmp_path, record):
    colon = read_wfdb(write_wfdb(tmp_path / "a" / "rec1.hea", record,
                                 comments=["Age: 54", "Sex: Male", "Height: 181", "Weight: 79.5", "Dx: 164873001"]))
    assert colon.patient["age"] == 54.0 and colon.patient["sex"] == "male"
    assert colon.patient["height_cm"] == 181.0 and colon.patient["weight_kg"] == 79.5
    assert colon.patient["dx"] == "164873001"
    angle = read_wfdb(write_wfdb(tmp_path / "b" / "rec2.hea", record,
                                 comments=["<age>: 61 <sex>: F", "<diagnoses>:", "Rhythm: Sinus rhythm."]))
    assert angle.patient["age"] == 61.0 and angle.patient["sex"] == "female"
    assert angle.patient["diagnoses"] == "" and angle.patient["rhythm"] == "Sinus rhythm."
    assert parse_comments(["Age: Unknown", "Sex: Unknown"]) == {"age": pytest.approx(np.nan, nan_ok=True),
                                                                  "sex": "unknown"}
    assert parse_comments(["<age>: 45  <sex>: M  <diagnoses>: (none)"])["sex"] == "male"


def test_a_record_path_without_suffix_reads(shared_data):
    record = shared_data / "ptbxl" / "records500" / "00841_hr"
    assert detect_format(record).name == "wfdb"
    ecg = read_ecg(record)
    assert ecg.signal.shape == (12, 5000) and ecg.record_id == "00841_hr"
    assert ecg.patient["age"] == 73.0 and ecg.patient["sex"] == "female" and ecg.patient["height_cm"] == 150.0
    np.testing.assert_array_equal(ecg.signal, read_ecg(record.with_suffix(".hea")).signal)
    challenge = read_ecg(shared_data / "cinc2021" / "E07500")
    assert challenge.patient["age"] == 78.0 and challenge.patient["sex"] == "male"


def test_short_wfdb_signal_file_names_declared_and_held_samples(shared_data, tmp_path):
    source = shared_data / "ptbxl" / "records500"
    (tmp_path / "00841_hr.hea").write_bytes((source / "00841_hr.hea").read_bytes())
    (tmp_path / "00841_hr.dat").write_bytes((source / "00841_hr.dat").read_bytes()[: 12 * 2 * 1234])
    with pytest.raises(ECGReadError, match="the header says 5000 samples per lead but the signal file "
                                           "00841_hr.dat holds 1234") as info:
        read_ecg(tmp_path / "00841_hr")
    own_words(info.value)


# ------------------------------------------------------------------------------------------------ CardioSoft


def _random_texts(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list("0123456789-,\n\t \r.e+x")
    weights = np.array([6] * 10 + [10, 12, 5, 3, 3, 2, 2, 1, 1, 1], dtype=float)
    texts = ["1,2,,3", "1, 2 ,\n3", "1 2,3", "1,-,3", "--1,2", "1-2,3", "1,2.5", ",,", "0,-0", "-",
             "12345678901234567,1", "\t\t-4,\n\t\t5\n", "5,", ",5", " 7 ", "1\r\n2", "१२,3"]
    for _ in range(n):
        texts.append("".join(rng.choice(alphabet, size=int(rng.integers(1, 14)), p=weights / weights.sum())))
    return texts


def test_vectorised_samples_equal_the_general_parser_values_and_errors():
    path = Path("x.xml")
    fast_used = 0
    for text in _random_texts(7, 2000):
        try:
            expected = _parse_samples_slow(text, path, "I", "StripData")
        except ECGReadError:
            expected = None  # the fast path must then decline (None) and leave the error to the general parser
        fast = _integer_samples(text)
        if fast is not None:
            fast_used += 1
            assert expected is not None and np.array_equal(fast, expected), text
            assert np.array_equal(np.signbit(fast), np.signbit(expected)), text
    assert fast_used > 500  # the fast path is taken for clean integer text, not bypassed


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and np.array_equal(a, b) and np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("batch_bytes", [cardiosoft.BATCH_BYTES, 40])
def test_leads_parsed_together_equal_each_lead_parsed_alone(monkeypatch, batch_bytes):
    monkeypatch.setattr(cardiosoft, "BATCH_BYTES", batch_bytes)
    rng = np.random.default_rng(11)
    pool = _random_texts(5, 600) + [",".join(map(str, rng.integers(-3000, 3000, 8))) for _ in range(400)] + [None, ""]
    together = 0
    for _ in range(1500):
        texts = [pool[i] for i in rng.integers(0, len(pool), int(rng.integers(1, 7)))]
        alone = [_integer_samples(text) if text else None for text in texts]
        rows = cardiosoft._sample_rows(texts)
        assert len(rows) == len(texts) and all(_same(a, b) for a, b in zip(rows, alone)), texts
        together += len(texts) > 1 and all(row is not None for row in alone)
    assert together > 100  # lists of clean texts, where the joined pass is the one that answers


def test_integer_samples_of_every_width_equal_the_general_parser():
    path = Path("x.xml")
    for digits in (1, 4, 5, 9, 10, 14, 15):
        text = f"{'9' * digits},-{'9' * digits},0,-0,\n\t{'1' + '0' * (digits - 1)}, -{'0' * digits}"
        fast = _integer_samples(text)
        assert _same(fast, _parse_samples_slow(text, path, "I", "StripData")), digits
        assert fast[0] == 10.0**digits - 1 and fast[1] == -(10.0**digits - 1) and np.signbit(fast[3])
    assert _integer_samples("1," + "9" * 16) is None and _integer_samples("0" * 16) is None  # the general parser
    for text in ("-", "1-2", "--1", "1-", "1,-", "1 2", "1,2.5", "e5"):
        assert _integer_samples(text) is None, text


def test_bad_median_lead_names_the_lead_and_the_first_bad_lead_wins(tmp_path, record):
    ecg = ECG.from_array(record.signal, STANDARD_LEADS, 500.0, record_id="r", median=record.signal[:, :400],
                         median_fs=500.0)
    text = write_cardiosoft(tmp_path / "r.xml", ecg).read_text(encoding="iso-8859-1")
    median = text.index("<MedianSamples>")
    v3 = text.index('<WaveformData lead="V3">', median) + len('<WaveformData lead="V3">')
    bad = tmp_path / "bad.xml"
    bad.write_text(text[:v3] + "\n7.5e," + text[v3:], encoding="iso-8859-1")
    with pytest.raises(ECGReadError, match="MedianSamples lead V3 holds a value that is not a number"):
        read_ecg(bad)
    v5 = text.index('<WaveformData lead="V5">', median)
    both = text[:v3] + "\n7x," + text[v3:v5] + '<WaveformData lead="Q9">' + text[v5 + len('<WaveformData lead="V5">'):]
    bad.write_text(both, encoding="iso-8859-1")
    with pytest.raises(ECGReadError, match="MedianSamples lead V3 holds a value"):
        read_ecg(bad)
    np.testing.assert_array_equal(read_ecg(tmp_path / "r.xml").median.shape, (12, 400))


def test_bad_sample_text_gives_the_same_error_as_before(tmp_path, record):
    ecg = ECG.from_array(record.signal, STANDARD_LEADS, 500.0, record_id="r")
    path = write_cardiosoft(tmp_path / "r.xml", ecg)
    text = path.read_text(encoding="iso-8859-1")
    assert np.abs(read_ecg(path).signal - record.signal).max() <= 0.0025 + 1e-6
    strip = text.index("<StripData>")
    first = text.index('<WaveformData lead="II">', strip) + len('<WaveformData lead="II">')
    for bad_value, reason in (("1x", "StripData lead II holds a value that is not a number"),
                              ("1.5e", "StripData lead II holds a value that is not a number")):
        bad = tmp_path / "bad.xml"
        bad.write_text(text[:first] + f"\n{bad_value}," + text[first:], encoding="iso-8859-1")
        with pytest.raises(ECGReadError, match=reason):
            read_ecg(bad)


# ------------------------------------------------------------------------------------------------ registry


def test_an_option_the_reader_does_not_take_is_named(shared_data):
    with pytest.raises(ECGReadError, match="the cardiosoft reader does not take the option\\(s\\) fs") as info:
        read_ecg(shared_data / "formats" / "ukb_cardiosoft" / "example-XML1.xml", fs=500)
    own_words(info.value)
