"""``aiecg prepare``: bad files are reported and skipped; a killed run resumes to the same store and leaves no
process or temporary file behind; shards merge; one writer per store; a finished store is left alone."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from aiecg.cli import main as aiecg
from aiecg.data.prepare import PrepareConfig, prepare_store
from aiecg.data.workers import Limits
from aiecg.io import registry
from aiecg.io.registry import Reader, register_reader
from tests.processes import descendants, survivors

pytestmark = pytest.mark.integration

STORE_FILES = ("median.npy", "beats.npy", "index.parquet", "errors.csv")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    data = tmp_path_factory.mktemp("prep") / "data"
    assert aiecg(["-q", "synth", "--out", str(data), "--n", "48", "--seed", "4", "--workers", "2"]) == 0
    # one truncated and one missing file among the good ones
    table = pd.read_parquet(data / "cohort.parquet")
    broken = data / table["ecg_file"].iloc[3]
    broken.write_bytes(broken.read_bytes()[:5000])
    (data / table["ecg_file"].iloc[7]).unlink()
    return data / "cohort.yaml", table


def _prepare(cohort_yaml, out, *extra):
    return [sys.executable, "-m", "aiecg.cli", *_prepare_args(cohort_yaml, out, *extra)]


def _prepare_args(cohort_yaml, out, *extra):
    return ["-q", "prepare", "--cohort", str(cohort_yaml), "--out", str(out), "--chunk-size", "4", *extra]


def _temp_files(store):
    return sorted(p.name for p in store.rglob(".*.tmp"))


def _kill_when(process, ready, timeout=120.0):
    """SIGKILL ``process`` once ``ready()`` holds; returns the processes it had started (its workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not ready():
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.fail("the process finished before it could be killed; give it more work")
    started = descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return started


def test_bad_files_are_reported_and_kept_in_the_index(cohort, tmp_path):
    cohort_yaml, table = cohort
    assert aiecg(["-q", "prepare", "--cohort", str(cohort_yaml), "--out", str(tmp_path / "s"), "--workers", "2"]) == 0
    index = pd.read_parquet(tmp_path / "s" / "index.parquet")
    assert len(index) == 48  # nothing silently dropped
    errors = pd.read_csv(tmp_path / "s" / "errors.csv", dtype={"id": str}).set_index("id")
    truncated, missing = str(table["eid"].iloc[3]), str(table["eid"].iloc[7])
    assert "not well-formed XML" in errors.loc[truncated, "reason"]
    assert "file not found" in errors.loc[missing, "reason"]
    assert set(errors.index) == set(index.loc[index["status"] != "ok", "id"])


def test_killed_prepare_resumes_to_an_identical_store(cohort, tmp_path):
    cohort_yaml, _ = cohort
    assert aiecg(_prepare_args(cohort_yaml, tmp_path / "whole")) == 0  # the reference, in process
    process = subprocess.Popen(_prepare(cohort_yaml, tmp_path / "killed", "--workers", "2"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed" / "parts"
    workers = _kill_when(process, lambda: parts.exists() and len(list(parts.glob("part-*.npz"))) >= 3)
    assert len(workers) == 2
    assert not survivors(workers), "pool workers outlived their SIGKILLed prepare"
    assert not (tmp_path / "killed" / "median.npy").exists()
    assert aiecg(_prepare_args(cohort_yaml, tmp_path / "killed")) == 0  # resumed in process
    for name in STORE_FILES:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name
    assert _temp_files(tmp_path / "killed") == []


def test_resume_removes_what_a_kill_during_the_merge_left_and_a_finished_store_is_left_alone(cohort, tmp_path,
                                                                                              capsys, caplog):
    cohort_yaml, _ = cohort
    store = tmp_path / "s"
    assert aiecg(_prepare_args(cohort_yaml, store)) == 0
    whole = {name: (store / name).read_bytes() for name in STORE_FILES}
    # a run killed while merging: median.npy written, beats.npy half written, index.parquet not yet
    (store / "index.parquet").unlink()
    (store / ".beats.npy.4242.tmp").write_bytes(whole["beats.npy"][: len(whole["beats.npy"]) // 2])
    (store / "parts" / ".part-000002.npz.4243.tmp").write_bytes(b"half a part")
    assert _temp_files(store) == [".beats.npy.4242.tmp", ".part-000002.npz.4243.tmp"]
    assert aiecg(_prepare_args(cohort_yaml, store)) == 0
    assert _temp_files(store) == []
    assert {name: (store / name).read_bytes() for name in STORE_FILES} == whole

    written = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    with caplog.at_level("INFO", logger="aiecg"):
        assert aiecg(_prepare_args(cohort_yaml, store)) == 0
    assert json.loads(capsys.readouterr().out)["note"] == "already complete; nothing to do"
    assert "already complete (48 records); nothing to do" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and p.name != ".lock"} == written


BLOCKING_PREPARE = """
import sys
from aiecg.cli import main
from aiecg.errors import ECGReadError
from aiecg.io.registry import Reader, register_reader

def read(path, **_):
    with open(sys.argv[1], "rb") as fifo:  # blocks until the test writes: the run holds the store meanwhile
        fifo.read()
    raise ECGReadError(path, "not an ECG")

register_reader(Reader("blocking-test", read, (".wait",), lambda head: head.startswith(b"AIECG-WAIT")))
sys.exit(main(sys.argv[2:]))
"""
"""``aiecg prepare`` in a process of its own whose reader of ``*.wait`` files blocks on a FIFO (readers refuse a
FIFO itself, so it sits behind a regular file)."""


def test_a_second_concurrent_prepare_refuses_and_the_store_stays_correct(cardiosoft_xml, tmp_path):
    cohort_yaml = _small_cohort(tmp_path, cardiosoft_xml, [])
    table = pd.read_csv(tmp_path / "cohort.csv", dtype=str)
    pd.concat([table, pd.DataFrame({"eid": ["020"], "ecg_file": ["ecg/blocks.wait"], "sex": ["1"]})]).to_csv(
        tmp_path / "cohort.csv", index=False)
    (tmp_path / "ecg" / "blocks.wait").write_bytes(b"AIECG-WAIT")
    os.mkfifo(tmp_path / "fifo")
    store = tmp_path / "store"
    first = subprocess.Popen([sys.executable, "-c", BLOCKING_PREPARE, str(tmp_path / "fifo"),
                              *_prepare(cohort_yaml, store, "--workers", "1")[3:]], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        lock = store / ".lock"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
            time.sleep(0.01)
        second = subprocess.run(_prepare(cohort_yaml, store, "--workers", "1"), capture_output=True, text=True)
        assert first.poll() is None
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [
            f"aiecg prepare: error: store {store} is being written by another aiecg prepare (pid {first.pid} on host "
            f"{os.uname().nodename}, started {json.loads(lock.read_text())['started']}); wait for it to finish or "
            "stop it, then run again"]
        with open(tmp_path / "fifo", "wb") as fifo:  # let the first run finish
            fifo.write(b"not an ECG")
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        first.kill()
        first.wait()
    index = pd.read_parquet(store / "index.parquet")
    assert index["id"].tolist() == ["000", "001", "002", "020"]
    assert index["status"].tolist() == ["ok", "ok", "ok", "read_error"]
    median = np.load(store / "median.npy")
    assert np.array_equal(median[0], median[2]) and np.abs(median[0]).max() > 0.1  # the same real ECG thrice
    assert lock.read_text() == "" and _temp_files(store) == []


# ---------------------------------------------------------------------------------------- crash isolation

MARK = b"AIECG-TEST-"


def _misbehave(path, **_):
    """A test-only reader: does to its worker what the file says (a real segfault, abort, hang, or memory hog)."""
    action = open(path, "rb").read()[len(MARK):].strip()
    if action == b"segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == b"abort":
        os.abort()
    elif action == b"hang":
        time.sleep(600)
    elif action == b"hog":
        return bytearray(16 * 2**30)
    raise AssertionError(f"unknown action {action!r}")


@pytest.fixture
def misbehaving_reader():
    register_reader(Reader("misbehave-test", _misbehave, (".bad",), lambda head: head.startswith(MARK)))
    yield
    registry._READERS.pop("misbehave-test")


def _small_cohort(folder, good_xml, actions):
    """Three real ECGs and one file per action; ids zero-padded, no format (so content decides the reader)."""
    (folder / "ecg").mkdir(parents=True)
    rows = []
    for i in range(3):
        shutil.copy(good_xml, folder / "ecg" / f"good{i}.xml")
        rows.append((f"00{i}", f"ecg/good{i}.xml"))
    for i, action in enumerate(actions):
        (folder / "ecg" / f"{action}.bad").write_bytes(MARK + action.encode())
        rows.append((f"01{i}", f"ecg/{action}.bad"))
    table = pd.DataFrame(rows, columns=["eid", "ecg_file"])
    table["sex"] = 1
    table.to_csv(folder / "cohort.csv", index=False)
    (folder / "cohort.yaml").write_text("table: cohort.csv\nid_column: eid\nsex: {column: sex, male: 1, female: 0}\n"
                                        "ecg: {column: ecg_file}\n")
    return folder / "cohort.yaml"


def test_a_record_that_crashes_hangs_or_exhausts_memory_is_one_error_row(misbehaving_reader, cardiosoft_xml,
                                                                          tmp_path):
    cohort_yaml = _small_cohort(tmp_path, cardiosoft_xml, ["segv", "abort", "hang", "hog"])
    for workers in (1, 2):
        store = tmp_path / f"store{workers}"
        summary = prepare_store(cohort_yaml, store, workers=workers, progress=False,
                                limits=Limits(timeout_s=6, memory_mb=1024))
        assert summary["merged"] and summary["status_counts"] == {"ok": 3, "crashed": 2, "timed_out": 1,
                                                                  "out_of_memory": 1}
        errors = pd.read_csv(store / "errors.csv", dtype=str).set_index("id")
        assert errors["reason"].to_dict() == {
            "010": "the reader crashed on this file (its worker process died of SIGSEGV)",
            "011": "the reader crashed on this file (its worker process died of SIGABRT)",
            "012": "timed out after 6 s; raise --record-timeout if such files are expected",
            "013": "ran out of memory (each worker may use 1024 MB more than at start; raise --max-memory-mb if "
                   "such files are expected)",
        }
        index = pd.read_parquet(store / "index.parquet")
        assert index["id"].tolist() == ["000", "001", "002", "010", "011", "012", "013"]
        assert (index["status"] == "ok").sum() == 3 and np.load(store / "median.npy").shape == (7, 12, 400)
    assert not descendants(os.getpid()) - {p for p in descendants(os.getpid()) if "forkserver" in _cmdline(p)}


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        return ""


def test_no_usable_record_exits_2_and_still_writes_errors_csv(tmp_path, capsys):
    (tmp_path / "cohort.csv").write_text("eid,sex,f\n1,1,missing1.xml\n2,0,missing2.xml\n")
    (tmp_path / "cohort.yaml").write_text("table: cohort.csv\nid_column: eid\nsex: {column: sex, male: 1, female: 0}\n"
                                          "ecg: {column: f, format: cardiosoft}\n")
    capsys.readouterr()
    code = aiecg(["-q", "prepare", "--cohort", str(tmp_path / "cohort.yaml"), "--out", str(tmp_path / "s")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"aiecg prepare: error: none of the 2 ECGs could be used (2 read_error); the reason for each is in "
        f"{tmp_path / 's' / 'errors.csv'}"]
    assert pd.read_csv(tmp_path / "s" / "errors.csv")["reason"].str.contains("file not found").all()


def test_a_full_disk_is_one_clear_line_and_leaves_no_temporary_file(cohort, tmp_path, monkeypatch, capsys):
    import aiecg.data.prepare as prepare
    from aiecg.files import atomic_write

    real = prepare.atomic_write_bytes
    written, full = [], []

    def fill_disk(path, data):  # the third part written (whichever chunk finished third) finds the disk full
        if len(written) == 2 and path.name.startswith("part-"):
            full.append(path.name)
            with atomic_write(path) as handle:
                handle.write(data[:100])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        if path.name.startswith("part-"):
            written.append(path)
        real(path, data)

    monkeypatch.setattr(prepare, "atomic_write_bytes", fill_disk)
    capsys.readouterr()
    store = tmp_path / "s"
    code = aiecg(["-q", "prepare", "--cohort", str(cohort[0]), "--out", str(store), "--chunk-size", "4",
                  "--workers", "2"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"aiecg prepare: error: cannot write the store {store}: the disk is full ({store / 'parts' / full[0]}); "
        "free space, or pass a writable --out"]
    assert _temp_files(store) == [] and len(list((store / "parts").glob("part-*.npz"))) == 2
    monkeypatch.undo()
    assert aiecg(["-q", "prepare", "--cohort", str(cohort[0]), "--out", str(store), "--chunk-size", "4"]) == 0


def test_shards_of_one_store_may_run_at_once_and_the_last_one_merges(cardiosoft_xml, tmp_path):
    cohort_yaml = _small_cohort(tmp_path, cardiosoft_xml, [])
    prepare_store(cohort_yaml, tmp_path / "whole", workers=1, progress=False, config=PrepareConfig(chunk_size=1))
    store = tmp_path / "sharded"
    runs = [subprocess.Popen(_prepare(cohort_yaml, store, "--chunk-size", "1", "--workers", "1", "--shard", f"{k}/3"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (1, 2, 3)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    summaries = [json.loads(out) for _, out, _ in results]
    assert sum(s["merged"] for s in summaries) >= 1
    for name in STORE_FILES:
        assert (tmp_path / "whole" / name).read_bytes() == (store / name).read_bytes(), name
    assert _temp_files(store) == []
