"""The bad-input matrix, through the command line as a user runs it (``python -m aiecg.cli prepare``).

Every bad input ends either as exit code 2 with one clear line on stderr, or as one error row in the store
while every good record is kept; none prints a traceback. (Forged bundles are tested with the bundle.)
"""

import io
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import yaml

from aiecg.data.cohort import load_cohort

pytestmark = pytest.mark.integration

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
GOOD = ["000101", "000102", "000103"]  # zero-padded ids: the padding must survive to find the files


def _prepare(cohort_yaml, out, *extra):
    command = [sys.executable, "-m", "aiecg.cli", "-q", "prepare", "--cohort", str(cohort_yaml), "--out", str(out),
               *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _scipy_crashing_mat() -> bytes:
    """A SHIP-layout MATLAB file with one byte changed: the data type of its matrix, which crashes scipy."""
    from scipy.io import savemat

    buffer = io.BytesIO()
    savemat(buffer, {"H12": np.random.default_rng(0).normal(0, 300, (15, 5000)).astype(np.int16)})
    data = bytearray(buffer.getvalue())
    assert data[176:180] == b"\x03\x00\x00\x00"  # the real part's type tag, right after the name 'H12'
    data[176] = 0x40
    return bytes(data)


def _npz(signal, fs) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, signal=signal, fs=fs, leads=np.array(LEADS), units="uV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, cardiosoft_xml):
    """A cohort of three real ECGs and one record per bad input; ECG files named by id (pattern '{id}')."""
    folder = tmp_path_factory.mktemp("matrix")
    ecg = folder / "ecg"
    ecg.mkdir()
    for record in GOOD:
        shutil.copy(cardiosoft_xml, ecg / record)
    signal = np.random.default_rng(1).normal(0, 300, (12, 5000))
    (ecg / "crash.mat").write_bytes(_scipy_crashing_mat())
    (ecg / "inf.npz").write_bytes(_npz(np.where(np.arange(5000) == 2500, np.inf, signal), 500.0))
    (ecg / "fast.npz").write_bytes(_npz(signal, 5000.001))
    xml = cardiosoft_xml.read_bytes()
    (ecg / "slow.xml").write_bytes(xml.replace(b'<SampleRate units="Hz">500</', b'<SampleRate units="Hz">0.001</'))
    ids = [*GOOD, "crash.mat", "inf.npz", "fast.npz", "slow.xml", "../../../../etc/passwd"]
    table = pd.DataFrame({"eid": ids, "sex": [1, 0, 1, 0, 1, 0, 1, 0], "age": ["61", "abc", "58", "", "", "", "", ""],
                          "ilvm": ["50.5", "47", "n/a", "", "", "", "", ""]})
    table.to_csv(folder / "cohort.csv", index=False)
    mapping = {"name": "matrix", "table": "cohort.csv", "id_column": "eid", "sex": {"column": "sex", "male": 1,
               "female": 0}, "ecg": {"dir": "ecg", "pattern": "{id}"}, "targets": {"INDEXED_MASS": "ilvm"},
               "clinical": {"binary": ["sex"], "continuous": ["age"]}}
    (folder / "cohort.yaml").write_text(yaml.safe_dump(mapping))
    return folder, mapping


def test_scipy_really_crashes_on_the_matlab_file(matrix):
    folder, _ = matrix
    crash = subprocess.run([sys.executable, "-c", "import sys; from scipy.io import loadmat; loadmat(sys.argv[1])",
                            str(folder / "ecg" / "crash.mat")], capture_output=True)
    assert crash.returncode < 0  # killed by a signal (SIGSEGV): a real interpreter crash, not an exception


def test_each_bad_record_is_one_error_row_and_every_good_record_is_kept(matrix):
    folder, _ = matrix
    store = folder / "store"
    run = _prepare(folder / "cohort.yaml", store, "--workers", "2", "--record-timeout", "120",
                   "--max-memory-mb", "1000")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "Fatal Python error" not in run.stderr
    index = pd.read_parquet(store / "index.parquet").set_index("id")
    assert len(index) == 8
    assert index.loc[GOOD, "status"].tolist() == ["ok", "ok", "ok"]
    status, reason = index["status"].to_dict(), index["reason"].to_dict()
    # the ioread header guard may refuse the file before scipy sees it; without it, the worker crashes
    assert (status["crash.mat"], reason["crash.mat"].split(" (")[0]) in {
        ("crashed", "the reader crashed on this file"), ("read_error", reason["crash.mat"].split(" (")[0])}
    assert "Error:" not in reason["crash.mat"] or status["crash.mat"] == "read_error"
    for record in ("inf.npz", "fast.npz", "slow.xml"):
        assert status[record] != "ok", (record, reason[record])
        assert reason[record], record
    assert status["../../../../etc/passwd"] == "read_error"
    assert "outside the ECG folder" in reason["../../../../etc/passwd"]
    errors = pd.read_csv(store / "errors.csv", dtype=str, keep_default_na=False)
    assert sorted(errors["id"]) == sorted(i for i, s in status.items() if s != "ok")
    assert (errors["reason"] != "").all()

    cohort = load_cohort(folder / "cohort.yaml", ("INDEXED_MASS",))  # text in numeric columns: named exclusions
    reasons = dict(zip(cohort.exclusions["id"], cohort.exclusions["reason"]))
    assert "non-numeric value 'abc' in clinical column 'age'" in reasons["000102"]
    assert "non-numeric INDEXED_MASS value 'n/a' in column 'ilvm'" in reasons["000103"]
    assert cohort.ids.tolist() == ["000101"]


def _case_yaml(folder, name, **keys):
    """The matrix cohort's YAML with ``keys`` replaced (None removes a key), in a file of its own."""
    _, mapping = folder
    changed = {k: v for k, v in {**mapping, **keys}.items() if v is not None}
    path = folder[0] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(changed))
    return path


def _bomb(folder) -> object:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = folder / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _blank_ids(folder) -> object:
    (folder / "blank.csv").write_text("eid,sex\n000101,1\n,0\n000103,1\n")
    (folder / "blank.yaml").write_text("table: blank.csv\nid_column: eid\nsex: {column: sex, male: 1, female: 0}\n"
                                       "ecg: {dir: ecg, pattern: '{id}'}\n")
    return folder / "blank.yaml"


def _nothing_usable(folder) -> object:
    (folder / "gone.csv").write_text("eid,sex\nnope1,1\nnope2,0\n")
    (folder / "gone.yaml").write_text("table: gone.csv\nid_column: eid\nsex: {column: sex, male: 1, female: 0}\n"
                                      "ecg: {dir: ecg, pattern: '{id}.xml'}\n")
    return folder / "gone.yaml"


CASES = {
    "ecg a string": (lambda f: _case_yaml(f, "c1", ecg="ecg/"), "'ecg' must be a mapping"),
    "targets a list": (lambda f: _case_yaml(f, "c2", targets=["ilvm"]), "'targets' must be a mapping"),
    "clinical a list": (lambda f: _case_yaml(f, "c3", clinical=["age"]), "'clinical' must be a mapping"),
    "table a number": (lambda f: _case_yaml(f, "c4", table=5), "'table' must be the table's file name"),
    "bad pattern": (lambda f: _case_yaml(f, "c5", ecg={"dir": "ecg", "pattern": "{id"}),
                    "'ecg.pattern' '{id' is not a valid pattern"),
    "options a list": (lambda f: _case_yaml(f, "c6", ecg={"dir": "ecg", "pattern": "{id}", "options": ["fs"]}),
                       "'options' must be a mapping"),
    "ranges malformed": (lambda f: _case_yaml(f, "c7", clinical={"continuous": ["age"], "ranges": {"age": [1]}}),
                         "'clinical.ranges.age' must be [low, high]"),
    "unknown format": (lambda f: _case_yaml(f, "c8", ecg={"dir": "ecg", "pattern": "{id}", "format": "edf"}),
                       "'ecg.format' 'edf' is not a known format; known: "),
    "bad reader option": (lambda f: _case_yaml(f, "c9", ecg={"dir": "ecg", "pattern": "{id}", "format": "npz",
                                                             "options": {"sampling_rate": 500}}),
                          "'ecg.options' ['sampling_rate'] are not options of the npz reader; it takes: "),
    "alias bomb": (lambda f: _bomb(f[0]), "values through its aliases (at most 100,000)"),
    "blank id": (lambda f: _blank_ids(f[0]), "1 row(s) have no id in column 'eid' (rows 3)"),
    "no usable record": (lambda f: _nothing_usable(f[0]), "none of the 2 ECGs could be used (2 read_error)"),
}


SUBPROCESS_CASES = ("ecg a string", "no usable record")
"""Run as a user runs them (a fresh interpreter each: ~5 s of imports on a loaded machine): a mistake found in the
YAML before any record is read, and one found after every record was tried in worker processes; the rest (the same
exit code and one line, from the same code) in process."""


def test_cohort_level_mistakes_are_exit_2_and_one_clear_line_from_the_command_line(matrix):
    folder, _ = matrix
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda n: _prepare(CASES[n][0](matrix), folder / f"out-{n}"), SUBPROCESS_CASES))
    for name, run in zip(SUBPROCESS_CASES, runs):
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, (name, run.stderr)
        assert len(lines) == 1 and lines[0].startswith("aiecg prepare: error: "), (name, run.stderr)
        assert CASES[name][1] in lines[0], (name, lines[0])
    assert (folder / "out-no usable record" / "errors.csv").exists()


@pytest.mark.parametrize("name", [n for n in CASES if n not in SUBPROCESS_CASES])
def test_cohort_level_mistakes_are_exit_2_and_one_clear_line(matrix, name, capsys):
    from aiecg.cli import main as aiecg

    folder, _ = matrix
    cohort_yaml = CASES[name][0](matrix)
    capsys.readouterr()
    assert aiecg(["-q", "prepare", "--cohort", str(cohort_yaml), "--out", str(folder / f"out-{name}")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiecg prepare: error: "), lines
    assert CASES[name][1] in lines[0]


def test_a_read_only_output_folder_is_exit_2_and_one_clear_line(matrix, tmp_path, capsys):
    from aiecg.cli import main as aiecg

    folder, _ = matrix
    (tmp_path / "a-file").write_text("")
    cases = {"under a file": (tmp_path / "a-file" / "store", "a part of the path is a file, not a folder")}
    if os.geteuid() != 0:  # root writes into a mode-555 folder regardless, so only a non-root run can test this
        (tmp_path / "ro").mkdir(mode=0o555)
        cases["mode 555"] = (tmp_path / "ro" / "store", "permission denied")
    for name, (out, words) in cases.items():
        capsys.readouterr()
        code = aiecg(["-q", "prepare", "--cohort", str(folder / "cohort.yaml"), "--out", str(out)])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (name, err)
        assert lines[0].startswith("aiecg prepare: error: cannot write the store ") and words in lines[0], name
