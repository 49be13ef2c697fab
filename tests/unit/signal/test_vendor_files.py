"""``aiecg measure`` on the real vendor files against the device's own fiducials and intervals.

Where our value and the printed one disagree, the test pins which is right and why (see
``benchmarks/measure_delineation.py``, ``VENDOR_NOTES``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from aiecg.signal.record import RecordAnalysis, analyse_ecg


def _analyse(shared_data: Path, name: str) -> tuple[object, RecordAnalysis]:
    from aiecg.io import read_ecg

    ecg = read_ecg(shared_data / "formats" / name)
    return ecg, analyse_ecg(ecg)


def _median_beat_qrs(analysis: RecordAnalysis) -> int:
    """The beat whose QRS onset lies nearest the median beat's (the representative beat)."""
    return int(np.argmin(np.abs(analysis.table["qrs_on_s"].to_numpy() - analysis.table["qrs_on_s"].median())))


def test_muse_first_degree_block_p_wave_ends_before_the_ta_wave(shared_data) -> None:
    # GE MUSE, sinus bradycardia with first-degree AV block (PR 330 ms): the P wave (device: POnset 46, POffset
    # 95 in its 500 Hz median, 98 ms) is followed by a long PR segment that the atrial repolarisation (Ta) wave
    # displaces. Before the fix the P "ended" at QRS onset (P duration 299 ms) and the P axis, taken over that
    # window against the PR segment, was -56 degrees against the device's 6.
    ecg, a = _analyse(shared_data, "muse/MUSE_20200923_093504_79000_example.xml")
    m, g = a.measurements, ecg.measurements
    assert a.beats.qc_ok
    assert m["pr_ms"] == pytest.approx(g["PQInterval"], abs=10)  # 330 ms
    # device 98 ms; ours 136: the P offset lands 10 ms after the tangent, which meets the baseline past the knee,
    # and both boundaries move out to the isoelectric points as LUDB's cardiologists mark them; far from 299
    assert 2 * (95 - 46) <= m["p_duration_ms"] <= 145
    assert m["p_axis_deg"] == pytest.approx(g["PAxis"], abs=10)  # device 6 degrees
    # the device prints 94 ms; our IEC envelope at the isoelectric points reads 120 (this device's boundaries
    # sit 7 ms inside our onset and 11 ms inside our offset; LUDB's cardiologists mark wider than the devices)
    assert m["qrs_duration_ms"] == pytest.approx(g["QRSDuration"] + 26, abs=6)
    assert m["qt_ms"] == pytest.approx(g["QTInterval"], abs=15)  # 434 ms


def test_sierra_p_axis_against_the_p_waves_own_isoelectric_line(shared_data) -> None:
    # Philips PageWriter TC: P axis 27 degrees; against the PR segment ours read 16
    ecg, a = _analyse(shared_data, "philips_sierra/2020-5-18_15-48-11.xml")
    m, g = a.measurements, ecg.measurements
    assert m["p_axis_deg"] == pytest.approx(g["PAxis"], abs=6)
    assert m["p_duration_ms"] == pytest.approx(104, abs=12)  # the file's global pdur
    assert m["pr_ms"] == pytest.approx(g["PQInterval"], abs=10)  # 164 ms


def _sierra_globals(path: Path) -> dict[str, float]:
    root = ET.parse(path).getroot()
    ns = {"p": root.tag.split("}")[0].strip("{")}
    node = root.find("p:measurements/p:globalmeasurements", ns)
    out = {}
    for key in ("qrson", "qrsoff", "meanqrsdur"):
        out[key] = float(node.find(f"p:{key}", ns).text)
    out["lead_qrsdur"] = {lm.get("leadname"): float(lm.find("p:qrsdur", ns).text)
                          for lm in root.findall("p:measurements/p:leadmeasurements/p:leadmeasurement", ns)}
    return out


def test_sierra_129dyprg_qrs_matches_the_devices_own_global_fiducials(shared_data) -> None:
    # Philips HeartStart MRx, acute inferior infarct: the printed QRS duration (135 ms, "nonspecific
    # intraventricular conduction delay") is the longest single-lead QRS (lead II, whose QRS runs into the
    # elevated ST segment), while the device's own global QRS onset and offset (ms from the strip start) span
    # 96 ms. Ours follow the global definition (IEC 60601-2-25: earliest onset to latest offset over all leads).
    path = shared_data / "formats" / "philips_sierra" / "129DYPRG.XML"
    dev = _sierra_globals(path)
    assert dev["meanqrsdur"] == max(dev["lead_qrsdur"].values()) == dev["lead_qrsdur"]["II"] == 135
    ecg, a = _analyse(shared_data, "philips_sierra/129DYPRG.XML")
    beats = a.table
    i = int(np.argmin(np.abs(beats["qrs_on_s"].to_numpy() * 1000 - dev["qrson"])))
    assert beats.loc[i, "qrs_on_s"] * 1000 == pytest.approx(dev["qrson"], abs=8)  # 7016 ms
    assert beats.loc[i, "qrs_off_s"] * 1000 == pytest.approx(dev["qrsoff"], abs=10)  # 7112 ms
    # 96 ms between the device's own global boundaries; ours 106, the envelope at the isoelectric points
    assert a.measurements["qrs_duration_ms"] == pytest.approx(dev["qrsoff"] - dev["qrson"] + 10, abs=6)
    # QT: ours (tangent T end) 454 ms, the device 476 ms: within the +-25 ms IEC 60601-2-25 tolerance
    assert a.measurements["qt_ms"] == pytest.approx(ecg.measurements["QTInterval"], abs=25)


def test_dicom_without_device_measurements_is_measured(shared_data) -> None:
    # GE MV360 export de-identified without its WaveformAnnotationSequence: no device values to compare with,
    # but our measurement works (the empty benchmark row is the file's, not a failure)
    ecg, a = _analyse(shared_data, "dicom/example-DICOM1.dcm")
    assert ecg.measurements == {}
    m = a.measurements
    assert a.beats.qc_ok and a.beats.clean.sum() >= 10
    assert 70 <= m["qrs_duration_ms"] <= 100 and 340 <= m["qt_ms"] <= 420 and 110 <= m["pr_ms"] <= 180
    assert m["heart_rate_bpm"] == pytest.approx(72, abs=3)


def test_dicom_atrial_fibrillation_has_no_p_axis(shared_data) -> None:
    # GE MAC55 in atrial fibrillation (its own statement): the device prints PR 0 and a P axis of 167 degrees
    # from fibrillatory waves; we report no P wave
    ecg, a = _analyse(shared_data, "dicom/example-DICOM2.dcm")
    m, g = a.measurements, ecg.measurements
    assert g["PQInterval"] == 0
    assert np.isnan(m["pr_ms"]) and np.isnan(m["p_axis_deg"])
    assert m["qrs_axis_deg"] == pytest.approx(g["RAxis"], abs=8)  # 26 degrees
    assert m["qt_ms"] == pytest.approx(g["QTInterval"], abs=15)  # 378 ms


def _hl7_waves(path: Path) -> dict[str, np.ndarray]:
    """The wave annotations of an HL7 aECG file: [wave, (on, off)] in s from the strip start (absolute time
    stamps, or milliseconds where the boundary is TIME_RELATIVE)."""
    root = ET.parse(path).getroot()
    ns = {"h": "urn:hl7-org:v3"}

    def seconds(stamp: str) -> float:  # YYYYMMDDhhmmss.fff
        return 3600 * float(stamp[8:10]) + 60 * float(stamp[10:12]) + float(stamp[12:])

    start = seconds(root.find(".//h:sequence/h:value/h:head", ns).get("value"))
    waves: dict[str, list[tuple[float, float]]] = {}
    for ann in root.iterfind(".//h:annotation", ns):
        value, bound = ann.find("h:value", ns), ann.find(".//h:boundary/h:value", ns)
        if value is None or bound is None or bound.find("h:low", ns) is None:
            continue
        low, high = bound.find("h:low", ns).get("value"), bound.find("h:high", ns).get("value")
        if ann.find(".//h:boundary/h:code", ns).get("code") == "TIME_RELATIVE":
            waves.setdefault(value.get("code") + "_rel", []).append((float(low) / 1000, float(high) / 1000))
        else:
            waves.setdefault(value.get("code"), []).append((seconds(low) - start, seconds(high) - start))
    return {k: np.asarray(v) for k, v in waves.items()}


def test_hl7_per_beat_boundaries_against_the_files_wave_annotations(shared_data) -> None:
    # the FDA aECG example annotates every beat's global P and QRS waves: our per-beat QRS onsets lie 7-13 ms
    # before the device's and the offsets within 6 ms (its QRS is 120 ms in every beat, ours 130-136): our
    # boundaries are the isoelectric points, which LUDB's cardiologists mark and this device does not; P onsets
    # 2-10 ms earlier, P offsets 2-14 ms later
    path = shared_data / "formats" / "hl7_aecg" / "subject1_0.xml"
    dev = _hl7_waves(path)
    _, a = _analyse(shared_data, "hl7_aecg/subject1_0.xml")
    beats = a.table
    for key, (on_bias, on_tol, off_bias, off_tol) in (("MDC_ECG_WAVC_QRSWAVE", (-0.010, 0.0035, 0.002, 0.005)),
                                                      ("MDC_ECG_WAVC_PWAVE", (-0.006, 0.005, 0.008, 0.007))):
        wave = "qrs" if "QRS" in key else "p"
        assert len(dev[key]) >= 10
        for on, off in dev[key]:
            i = int(np.argmin(np.abs(beats[f"{wave}_on_s"].to_numpy() - on)))
            if not beats.loc[i, "clean"]:  # the last beat, delineated on its own with higher thresholds
                assert beats.loc[i, f"{wave}_on_s"] == pytest.approx(on, abs=0.021), (wave, on)
                continue
            assert beats.loc[i, f"{wave}_on_s"] - on == pytest.approx(on_bias, abs=on_tol), (wave, on)
            assert beats.loc[i, f"{wave}_off_s"] - off == pytest.approx(off_bias, abs=off_tol), (wave, off)
    # QRS-T annotations (QRS onset to T end, ms from the strip start) of three beats: our T ends within 15 ms
    assert len(dev["MDC_ECG_WAVC_QRSTWAVE_rel"]) == 3
    for _, t_end in dev["MDC_ECG_WAVC_QRSTWAVE_rel"]:
        i = int(np.argmin(np.abs(beats["t_off_s"].to_numpy() - t_end)))
        assert beats.loc[i, "t_off_s"] == pytest.approx(t_end, abs=0.015)
