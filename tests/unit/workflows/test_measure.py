"""``aiecg measure``: one row per input file (bad ones included), per-beat rows, folders and cohort YAML, the
process pool, and agreement with ``prepare``'s store rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from aiecg.cli import main
from aiecg.ecg import ECG, STANDARD_LEADS
from aiecg.io.wfdb import write_wfdb
from aiecg.signal.delineation import BEAT_COLUMNS
from aiecg.workflows.measure import MeasureError, collect_inputs, round_to_resolution, run_measure
from tests.unit.signal.test_beats import synth_ecg


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("measure-in")
    for i, hr in enumerate((58, 75, 96)):
        raw, _, _ = synth_ecg(40 + i, hr=hr)
        write_wfdb(root / "sub" / f"rec{i}.hea", ECG.from_array(raw, STANDARD_LEADS, 500.0, record_id=f"rec{i}"),
                   comments=["age: 60", "sex: male"])
    (root / "broken.xml").write_text("<not an ecg")
    return root


def test_one_row_per_file_and_error_rows(folder, tmp_path) -> None:
    missing = tmp_path / "nowhere.hea"
    summary = run_measure([folder, missing], tmp_path / "out", with_beats=True)
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert summary["files"] == len(table) == 5  # 3 WFDB records (once each, by header), broken.xml, missing
    assert table["file"].str.endswith(".dat").sum() == 0
    by_name = table.set_index(table["file"].str.rsplit("/", n=1).str[-1])
    assert by_name.loc["broken.xml", "status"] == "read_error" and by_name.loc["broken.xml", "reason"]
    assert by_name.loc["nowhere.hea", "status"] == "read_error"
    ok = table[table["status"] == "ok"]
    assert len(ok) == 3
    assert np.allclose(ok.sort_values("file")["heart_rate_bpm"], (58, 75, 96), rtol=0.05)
    assert ok["qrs_duration_ms"].between(40, 200).all() and ok["sokolow_lyon"].notna().all()
    assert ok["cornell_product"].notna().all()  # sex from the header comments
    for column in ("record_id", "pr_ms", "qtc_bazett_ms", "qtc_fridericia_ms", "p_axis_deg", "t_axis_deg",
                   "R_V5", "S_V1", "ST_V5", "P_II", "romhilt_estes"):
        assert column in table.columns
    beats = pd.read_csv(tmp_path / "out" / "beats.csv")
    assert list(beats.columns) == ["file", *BEAT_COLUMNS]
    assert set(beats["file"]) == set(ok["file"])
    assert len(beats) == int(ok["n_beats"].sum())


def test_process_pool_gives_the_same_table(folder, tmp_path) -> None:
    run_measure([folder], tmp_path / "one", workers=1)
    run_measure([folder], tmp_path / "two", workers=2)
    a = pd.read_csv(tmp_path / "one" / "measurements.csv")
    b = pd.read_csv(tmp_path / "two" / "measurements.csv")
    pd.testing.assert_frame_equal(a, b)


def test_cohort_yaml_input_and_agreement_with_prepare(folder, tmp_path) -> None:
    from aiecg.data.prepare import PrepareConfig, prepare_record

    files = sorted((folder / "sub").glob("*.hea"))
    pd.DataFrame({"eid": [1, 2, 3], "sex": [1, 0, 1], "ecg": [str(f) for f in files]}).to_csv(
        tmp_path / "t.csv", index=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "name": "t", "table": "t.csv", "id_column": "eid", "sex": {"column": "sex", "male": 1, "female": 0},
        "ecg": {"column": "ecg", "format": "wfdb"}}))
    tasks = collect_inputs([tmp_path / "c.yaml"])
    assert [t.record_id for t in tasks] == ["1", "2", "3"] and all(t.format == "wfdb" for t in tasks)
    run_measure([tmp_path / "c.yaml"], tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert list(table["record_id"].astype(str)) == ["1", "2", "3"]
    stored = prepare_record("1", str(files[0]), "wfdb", PrepareConfig())
    row = table.iloc[0]
    keys = ["qrs_duration_ms", "qt_ms", "pr_ms", "R_V5", "S_V1", "qrs_axis_deg"]
    expected = round_to_resolution(pd.DataFrame([{k: float(stored[k]) for k in keys}])).iloc[0]  # 1 ms, 1 uV, 1 deg
    for key in keys:
        assert row[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-9), key
    assert stored["status"] == row["status"] == "ok"


def test_nothing_to_measure_is_an_error(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeasureError, match="no ECG files"):
        collect_inputs([tmp_path / "empty"])
    assert main(["-q", "measure", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no ECG files" in capsys.readouterr().err


def test_measure_and_predict_scan_a_folder_alike(folder, tmp_path) -> None:
    import shutil

    from aiecg.io import ecg_files_in
    from aiecg.workflows.predict import collect_records

    root = tmp_path / "scan"
    shutil.copytree(folder, root)
    (root / "notes.txt").write_text("not an ECG")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.xml").write_text("<x/>")
    np.save(root / "strip.npy", np.zeros((12, 5000), dtype=np.float32))
    found, skipped = ecg_files_in(root)
    names = sorted(p.name for p in found)
    assert names == ["broken.xml", "rec0.hea", "rec1.hea", "rec2.hea"]  # headers, not their .dat signal files
    # notes.txt and strip.npy (a bare array needs its rate: asked for by --format); the 3 .dat signal files are
    # read with their headers, so they are not skipped
    assert skipped == 2
    assert ecg_files_in(root, "npy")[1] == 8  # --format npy: the XML, the headers and their .dat files, notes.txt
    assert [t.file for t in collect_inputs([root])] == [str(p) for p in found]
    assert list(collect_records([root])[0]["file"]) == [str(p) for p in found]
    assert [p.name for p in ecg_files_in(root, "npy")[0]] == ["strip.npy"]
    assert [t.format for t in collect_inputs([root], "npy")] == ["npy"]


def test_a_challenge_records_mat_signal_files_are_not_reported_as_skipped(shared_data, tmp_path, caplog) -> None:
    """PhysioNet/CinC challenge records are ``.hea`` + ``.mat`` pairs: the ``.mat`` is the header's signal file,
    read with it, so a folder scan neither takes it as an ECG of its own nor logs it as skipped."""
    import shutil

    from aiecg.inputs import expand_inputs
    from aiecg.io import ecg_files_in

    root = tmp_path / "challenge"
    root.mkdir()
    for name in ("E07500", "E07505"):
        for suffix in (".hea", ".mat"):
            shutil.copy(shared_data / "cinc2021" / f"{name}{suffix}", root)
    (root / "README.txt").write_text("not an ECG")
    found, skipped = ecg_files_in(root)
    assert [p.name for p in found] == ["E07500.hea", "E07505.hea"] and skipped == 1  # README.txt only
    with caplog.at_level("INFO", logger="aiecg"):
        assert [r.file for r in expand_inputs([root])] == [str(p) for p in found]
    assert f"{root}: 1 file(s) skipped" in caplog.text


def test_per_lead_table_and_paced_status_on_real_records(shared_data, tmp_path) -> None:
    """LUDB record 104 is ventricular-paced, record 1 sinus: ``--per-lead`` writes leads.csv (one row per beat and
    lead), and the paced record is measured with status 'paced', not rejected."""
    import shutil

    ludb = shared_data / "ludb" / "data"
    if not ludb.is_dir():
        pytest.skip("LUDB not found in shared/data")
    for rec in ("1", "104"):
        for suffix in (".hea", ".dat"):
            shutil.copy(ludb / f"{rec}{suffix}", tmp_path / f"{rec}{suffix}")
    summary = run_measure([tmp_path / "1.hea", tmp_path / "104.hea"], tmp_path / "out", with_beats=True,
                          with_leads=True)
    table = pd.read_csv(tmp_path / "out" / "measurements.csv").set_index("record_id")
    assert table.loc[104, "status"] == "paced" and table.loc[104, "paced"] == "ventricular"
    assert table.loc[104, "qrs_duration_ms"] > 120  # measured
    assert table.loc[1, "status"] == "ok" and pd.isna(table.loc[1, "paced"])
    beats = pd.read_csv(tmp_path / "out" / "beats.csv")
    leads = pd.read_csv(summary["leads"])
    assert len(leads) == 12 * len(beats)
    assert set(leads["lead"]) == set(STANDARD_LEADS)
    first = leads[(leads["file"] == beats.loc[1, "file"]) & (leads["beat"] == 1)]
    # the global QRS (IEC: earliest onset, latest offset over the leads) spans the leads' own QRS boundaries
    assert beats.loc[1, "qrs_on_s"] <= first["qrs_on_s"].min() + 0.006
    assert beats.loc[1, "qrs_off_s"] >= first["qrs_off_s"].max() - 0.006
