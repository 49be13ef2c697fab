"""Delineation against known fiducials: Gaussian beats, the synthetic generator's true per-beat P/QRS/T, and the
device's intervals on the real UK Biobank-format XML."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiecg.ecg import STANDARD_LEADS
from aiecg.signal.delineation import BEAT_COLUMNS, DelineationConfig, delineate, qrs_bounds
from aiecg.signal.record import analyse_ecg, analyse_signal, beat_table

FS = 500.0
ROOT = Path(__file__).resolve().parents[3]


def _truth_module():
    spec = importlib.util.spec_from_file_location("delineation_truth", ROOT / "benchmarks" / "delineation_truth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _g(t: np.ndarray, c: float, w: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - c) / w) ** 2)


def test_t_end_of_one_gaussian_lobe_and_qrs_bounds_of_leads_that_start_apart() -> None:
    t = (np.arange(600) - 250) / FS
    lead_a = 1.0 * _g(t, 0.0, 0.01) + 0.3 * _g(t, 0.25, 0.04)
    lead_b = -0.6 * _g(t, 0.03, 0.01) + 0.2 * _g(t, 0.25, 0.04)  # its QRS ends 30 ms after lead a's
    lead_c = 0.4 * _g(t, -0.025, 0.01)  # and this one starts 25 ms earlier
    beat = np.stack([lead_a, lead_b, lead_c])
    on, off = qrs_bounds(beat, FS, 250)
    # global bounds: the earliest onset (lead c) and the latest offset (lead b): the threshold crossing ~2.5 SD
    # out, then on to the isoelectric point (the spatial velocity's minimum, at most 10 ms further), which on
    # noise-free lobes lies past 3.5 SD
    assert (on - 250) / FS == pytest.approx(-0.025 - 0.037, abs=0.004)
    assert (off - 250) / FS == pytest.approx(0.03 + 0.04, abs=0.004)
    crossing = qrs_bounds(beat, FS, 250, DelineationConfig(iso_walk_s=0.0))
    assert 0.006 <= (crossing[0] - on) / FS <= 0.012 and 0.006 <= (off - crossing[1]) / FS <= 0.012
    fid = delineate(beat, FS, 250, rr_s=1.0)
    assert np.isnan(fid.p_on)  # no P wave in this beat
    assert (fid.t_peak - 250) / FS == pytest.approx(0.25, abs=0.004)
    # T end at the return to baseline: between 2 SD (tangent) and 2.5 SD after the T centre
    assert 0.25 + 2.0 * 0.04 - 0.004 <= (fid.t_off - 250) / FS <= 0.25 + 2.5 * 0.04 + 0.004


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from aiecg.io import read_ecg
    from aiecg.synth import SynthConfig, generate_cohort

    work = tmp_path_factory.mktemp("synth-delineation")
    cfg = SynthConfig(n=14, seed=3, workers=1)
    result = generate_cohort(work, cfg)
    truth = _truth_module().load_beat_truth(result.beats_truth, cfg)
    bad = pd.read_parquet(result.truth).set_index("eid")["bad_reason"]
    table = pd.read_parquet(result.table)
    analyses = {int(e): analyse_ecg(read_ecg(work / f)) for e, f in zip(table["eid"], table["ecg_file"])}
    return truth, bad, analyses


def test_per_beat_fiducials_meet_the_tolerances_on_synthetic_truth(synthetic) -> None:
    truth, bad, analyses = synthetic
    errors = {k: [] for k in ("p_on", "p_off", "qrs_on", "qrs_off", "t_off")}
    duration, hits, n_true, n_found = [], 0, 0, 0
    for eid, analysis in analyses.items():
        if bad[eid]:
            continue
        tb = truth[truth["eid"] == eid].reset_index(drop=True)
        found = analysis.table
        n_true, n_found = n_true + len(tb), n_found + len(found)
        for _, row in tb.iterrows():
            d = np.abs(found["r_peak_s"].to_numpy() - row["r_peak_s"])
            if d.min() > 0.15:
                continue
            hits += 1
            j = int(np.argmin(d))
            if row["ectopic"]:
                assert np.isnan(found.loc[j, "p_on_s"])  # a premature ventricular beat has no P wave
                continue
            for k in errors:
                errors[k].append(1000 * (found.loc[j, f"{k}_s"] - row[f"{k}_s"]))
            duration.append(1000 * ((found.loc[j, "qrs_off_s"] - found.loc[j, "qrs_on_s"])
                                    - (row["qrs_off_s"] - row["qrs_on_s"])))
    assert n_true > 100
    assert hits / n_true >= 0.99 and hits / n_found >= 0.99
    mae = {k: float(np.nanmedian(np.abs(v))) for k, v in errors.items()}
    assert mae["qrs_on"] <= 10 and mae["qrs_off"] <= 10, mae
    assert mae["p_on"] <= 15 and mae["p_off"] <= 15, mae
    assert mae["t_off"] <= 25, mae
    # QRS duration bias: the IEC goal is +-5 ms. Against the generator's clinical truth (second-earliest lead
    # 10 uV off its baseline to the second-latest back) we read about 13 ms long; against the cardiologists' LUDB
    # marks 6 ms short and the devices' printed values 7 ms long (benchmarks/results/ludb_delineation.json): the
    # Gaussian lobes' long tails make the synthetic "visible" boundary threshold-dependent, so this guards against
    # a gross regression (16 ms) rather than asserting the goal, which is reported as not met.
    assert abs(float(np.nanmedian(duration))) <= 16.0, float(np.nanmedian(duration))
    assert np.isfinite(errors["p_on"]).mean() >= 0.95


def test_clean_synthetic_records_pass_qc_and_the_bad_ones_fail(synthetic) -> None:
    _, bad, analyses = synthetic
    for eid, analysis in analyses.items():
        assert analysis.beats.qc_ok == (not bad[eid]), (eid, bad[eid], analysis.beats.qc_reason)


def test_beat_table_columns_and_times(cardiosoft_xml) -> None:
    from aiecg.io import read_ecg

    ecg = read_ecg(cardiosoft_xml)
    beats = beat_table(ecg)
    assert tuple(beats.columns) == BEAT_COLUMNS
    assert len(beats) == 8 and beats["clean"].all()  # 8 sinus beats (the device's QRSNum)
    assert ((beats["p_on_s"] < beats["p_off_s"]) & (beats["p_off_s"] < beats["qrs_on_s"])
            & (beats["qrs_on_s"] < beats["r_peak_s"]) & (beats["r_peak_s"] < beats["qrs_off_s"])
            & (beats["qrs_off_s"] < beats["t_peak_s"]) & (beats["t_peak_s"] < beats["t_off_s"])).all()
    # device QRS 92 ms; ours is the IEC envelope calibrated on cardiologists' marks (LUDB), 12 ms wider here
    assert 1000 * (beats["qrs_off_s"] - beats["qrs_on_s"]).median() == pytest.approx(104, abs=6)
    assert 1000 * (beats["t_off_s"] - beats["qrs_on_s"]).median() == pytest.approx(440, abs=20)  # device QT
    assert (beats["r_peak_s"].diff().dropna() * 1000).median() == pytest.approx(1202, abs=20)  # device RR


def test_global_measurements_agree_with_the_device(cardiosoft_xml) -> None:
    from aiecg.io import read_ecg

    ecg = read_ecg(cardiosoft_xml)
    m = analyse_ecg(ecg).measurements
    g = ecg.measurements
    # QRS 92 ms and P 106 ms printed; ours are the IEC envelopes moved out to the isoelectric points as the LUDB
    # cardiologists mark them (on LUDB within -6 and -2 ms of their marks on average), 12 and 24 ms wider here
    assert m["qrs_duration_ms"] == pytest.approx(g["QRSDuration"] + 12, abs=6)
    assert m["qt_ms"] == pytest.approx(g["QTInterval"], abs=20)  # 440 ms
    assert m["pr_ms"] == pytest.approx(g["PQInterval"], abs=15)  # 174 ms
    assert m["p_duration_ms"] == pytest.approx(g["PDuration"] + 24, abs=8)
    assert m["p_axis_deg"] == pytest.approx(g["PAxis"], abs=15)
    assert m["t_axis_deg"] == pytest.approx(g["TAxis"], abs=15)
    assert m["qtc_fridericia_ms"] == pytest.approx(m["qt_ms"] / np.cbrt(m["rr_ms"] / 1000))


def test_no_p_wave_in_atrial_fibrillation() -> None:
    from tests.unit.signal.test_beats import synth_ecg

    raw, truth, _ = synth_ecg(31, hr=90, noise_mv=0.01)
    t = np.arange(raw.shape[1]) / FS
    rng = np.random.default_rng(0)
    # remove the P waves (their template: centre 160 ms before R) and add fibrillatory waves (4-8 Hz, 40 uV)
    from tests.unit.signal.test_beats import _AMPS, _CENTRES, _WIDTHS

    for r in truth / FS:
        raw -= (_AMPS[:, 0:1] * _g(t, r + _CENTRES[0], _WIDTHS[0])[None, :]).astype(np.float32)
    f_waves = sum(0.02 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in rng.uniform(4, 8, 6))
    raw += (f_waves[None, :] * rng.uniform(0.3, 1.0, (12, 1))).astype(np.float32)
    result = analyse_signal(raw, FS, STANDARD_LEADS)
    assert result.beats.qc_ok, result.beats.qc_reason
    assert result.table["p_on_s"].isna().mean() >= 0.9
    assert np.isnan(result.measurements["pr_ms"])
    assert result.table["qrs_on_s"].notna().all()
