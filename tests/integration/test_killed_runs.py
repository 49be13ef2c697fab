"""Training and fine-tuning killed at a random moment (SIGKILL, or SIGINT as Ctrl-C) leave their output folder
complete and consistent, or absent, and no process behind (issue 22).

Each run replaces an earlier, finished run of the same name with a run of another seed, and is killed at a moment
drawn at random after a chosen stage has begun (a file appears in its partial folder). Afterwards the folder is
either the earlier run, byte for byte, or the new run complete; the partial folder, when kept, is resumable.

``predict``, ``measure``, ``explain``, ``report`` and ``export`` are killed the same way, each once (SIGINT or
SIGKILL), on the session's fixtures: its outputs are absent or complete and consistent, no temporary file is left
where a reader would take it for an output, and no process survives.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import yaml

from aiecg.bundle import load_bundle
from aiecg.csvfile import read_csv
from aiecg.data.splits import Splits
from aiecg.files import TMP_SUFFIX
from aiecg.runio import PARTIAL, REPLACED, partial_dir
from tests.processes import descendants, survivors

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = ("config.yaml", "splits.json", "model.aiecg", "results.csv", "results_val.csv", "metrics.json")
TRAIN_FILES = (*RUN_FILES, "epochs.csv")
FINETUNE_FILES = (*RUN_FILES, "untuned/metrics.json", "stage0/epochs.csv")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _start(argv: list[str], stdout: Any = subprocess.DEVNULL, **env: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1",
           **env}
    # SIGINT as in a terminal: a test runner started in the background passes SIGINT on as ignored
    return subprocess.Popen([sys.executable, "-m", "aiecg.cli", "-q", *argv], env=env, stdout=stdout,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _kill_after(process: subprocess.Popen, started: Path, signum: int, delay: float) -> tuple[set[int], str]:
    """Send ``signum`` ``delay`` seconds after ``started`` appears; returns the process and every process below
    it, seen just before the signal, and the run's stderr. Fails if the run ends before the signal."""
    deadline = time.monotonic() + 300
    while process.poll() is None and not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    pids = {process.pid, *descendants(process.pid)}
    if process.poll() is not None:
        pytest.fail(f"the run ended (exit {process.returncode}) before it could be killed; give it more work")
    os.kill(process.pid, signum)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the run did not end within 120 s of signal {signum}")
    assert process.returncode in (-signal.SIGKILL, 130), (process.returncode, err)  # killed, or "interrupted"
    return pids, err


def _check_complete(run: Path, files: tuple[str, ...], seed_key: tuple[str, ...], seed: int) -> None:
    """``run`` holds every file of a finished run, of the new seed, consistent with each other."""
    missing = [name for name in files if not (run / name).exists()]
    assert not missing, f"{run} is neither the earlier run nor complete: {missing} missing"
    config = yaml.safe_load((run / "config.yaml").read_text())
    for key in seed_key:
        config = config[key]
    assert config == seed
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["bundle"] == str(run / "model.aiecg")
    load_bundle(run / "model.aiecg")
    test_ids = Splits.load(run).test
    assert len((run / "results.csv").read_text().splitlines()) == len(test_ids) + 1


def _check_after_kill(final: Path, before: dict[str, bytes], pids: set[int], err: str, files: tuple[str, ...],
                      seed_key: tuple[str, ...], seed: int, resumable: bool, moment: str) -> None:
    """No process left; ``final`` as it was ``before`` (the earlier run, or absent: {}), or the new run whole; no
    temporary folder beside it but a resumable partial one."""
    assert survivors(pids) == set(), f"processes left running after the kill ({moment})"
    assert "Traceback" not in err, err
    if _files(final) != before:  # not the earlier run: then the new run, whole
        _check_complete(final, files, seed_key, seed)
    leftovers = sorted(p.name for p in final.parent.iterdir() if p.name.startswith("."))
    partial = partial_dir(final)
    if resumable and partial.exists():
        assert (partial / "checkpoint.pt").exists(), f"a kept partial folder without its checkpoint ({moment})"
        leftovers.remove(partial.name)
    assert leftovers == [], f"temporary folders left beside the run ({moment}): {leftovers}"


@pytest.mark.parametrize(("signum", "stage"), [(signal.SIGKILL, "model.aiecg"), (signal.SIGINT, "epochs.csv")])
def test_a_killed_training_leaves_the_earlier_run_or_the_new_one_whole(synth_cohort, ilvm_run, tmp_path, signum,
                                                                         stage):
    runs = tmp_path / "runs"
    shutil.copytree(ilvm_run, runs / "fcn")  # the earlier run of this name (seed 0)
    before = _files(runs / "fcn")
    delay = random.Random(f"{signum}{stage}").uniform(0.0, 0.5)
    moment = f"signal {signum} {delay:.2f} s after {stage} began"
    process = _start(["train", "--cohort", str(synth_cohort / "cohort.yaml"), "--out", str(runs), "--name", "fcn",
                      "--target", "INDEXED_MASS", "--epochs", "2", "--seed", "7", "--threads", "1"])
    pids, err = _kill_after(process, partial_dir(runs / "fcn") / stage, signum, delay)
    _check_after_kill(runs / "fcn", before, pids, err, TRAIN_FILES, ("fit", "seed"), 7, resumable=True, moment=moment)


def test_a_killed_fine_tuning_leaves_nothing_or_its_whole_run(synth_cohort, ilvm_run, tmp_path):
    out = tmp_path / "tuned"
    delay = random.Random("finetune").uniform(0.0, 1.0)
    process = _start(["finetune", "--bundle", str(ilvm_run / "model.aiecg"), "--cohort",
                      str(synth_cohort / "cohort.yaml"), "--out", str(out), "--epochs", "1", "--stages", "2",
                      "--seed", "5", "--threads", "1"])
    pids, err = _kill_after(process, partial_dir(out) / "stage1", signal.SIGINT, delay)
    _check_after_kill(out, {}, pids, err, FINETUNE_FILES, ("seed",), 5, resumable=False,
                      moment=f"SIGINT {delay:.2f} s after stage 1")


def test_a_tune_worker_interrupted_mid_trial_fails_the_trial_and_queues_its_setting_again(synth_cohort, tmp_path):
    """Ctrl-C while a trial trains: one line, exit 130, no trial left RUNNING (it would wait for the reaper), its
    setting waiting for the next worker, and no process left."""
    optuna = pytest.importorskip("optuna")
    from aiecg.train import hpo

    journal = tmp_path / "study.log"
    process = _start(["tune", "--cohort", str(synth_cohort / "cohort.yaml"), "--search-only", "--trials", "4",
                      "--epochs", "40", "--pruner", "none", "--storage", f"journal://{journal}", "--out",
                      str(tmp_path / "tune"), "--threads", "1"])

    def training() -> bool:  # a trial has drawn every setting: it is in its epochs
        if not journal.exists():
            return False
        try:
            study = optuna.load_study(study_name="aiecg-tune", storage=hpo.open_storage(f"journal://{journal}"))
        except (KeyError, ValueError):
            return False
        return any(t.state.name == "RUNNING" and len(t.params) == len(hpo.DEFAULT_SPACE) for t in study.get_trials())

    deadline = time.monotonic() + 240
    while process.poll() is None and not training() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(random.Random("tune").uniform(0.0, 0.5))
    pids, err = _kill_after(process, journal, signal.SIGINT, 0.0)
    assert survivors(pids) == set()
    assert err.strip().splitlines()[-1] == "aiecg tune: interrupted", err
    trials = optuna.load_study(study_name="aiecg-tune", storage=hpo.open_storage(f"journal://{journal}")).get_trials()
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and states.count("FAIL") == 1, states
    failed = next(t for t in trials if t.state.name == "FAIL")
    waiting = [t for t in trials if t.state.name == "WAITING"]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == failed.number


def test_an_interrupted_pretraining_leaves_no_run_folder_only_its_resumable_partial(synth_cohort, tmp_path):
    out = tmp_path / "pre"
    delay = random.Random("pretrain").uniform(0.0, 0.5)
    process = _start(["pretrain", "--stores", str(synth_cohort / "store"), "--out", str(out), "--epochs", "50",
                      "--batch-size", "16", "--seed", "3", "--threads", "1"])
    pids, err = _kill_after(process, partial_dir(out) / "epochs.csv", signal.SIGINT, delay)
    assert survivors(pids) == set() and "Traceback" not in err, err
    assert not out.exists(), "an unfinished pre-training looks finished"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers in ([], [partial_dir(out).name])
    if leftovers:
        assert (partial_dir(out) / "checkpoint.pt").exists()


# --- the commands that write a table, a page or a file: predict, measure, explain, report, export ---------------
# Each case names the command, the moment its kill is drawn from (a seeded delay after a sign that the work, or
# the writing, has begun) and what its outputs must then be: absent, or complete and consistent.

def _temporaries(root: Path) -> list[str]:
    """Names the project's atomic writers and run folders use for unfinished outputs (aiecg.files, aiecg.runio),
    and the scratch folders of an on-the-fly ONNX export, anywhere under ``root``."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.endswith((TMP_SUFFIX, PARTIAL, REPLACED)) or p.name.startswith("aiecg-onnx-"))


def _ecg_files(synth_cohort: Path, n: int) -> list[str]:
    return [str(p) for p in sorted((synth_cohort / "ecg").iterdir())[:n]]


def _summary(stdout: Path) -> dict | None:
    """The JSON summary a command prints when it finishes (None: it printed nothing)."""
    text = stdout.read_text()
    return json.loads(text) if text.strip() else None


EXPLAIN_FIGURES = ("sanity", "clinical", "time", "waves", "beats_low", "beats_high", "cam")


class Case(NamedTuple):
    argv: list[str]
    started: Callable[[], bool]  # the work (or the writing) has begun
    window: float  # the kill comes within this many seconds after
    check: Callable[[dict | None], None]  # the outputs, given the printed summary


def _predict(synth_cohort: Path, ilvm_run: Path, out: Path, scratch: Path) -> Case:
    files = _ecg_files(synth_cohort, 6)
    table = out / "predictions.csv"

    def check(summary: dict | None) -> None:
        if table.exists():  # the table whole: one row per file
            frame = read_csv(table)
            assert sorted(frame["file"].map(lambda f: Path(f).name)) == sorted(Path(f).name for f in files)
        if summary is not None:  # a summary only of a table that is there, with the rows it counts
            assert summary["out"] == str(table) and summary["records"] == len(files), summary
            assert table.exists(), "a summary of a table that was never written"

    return Case(["predict", "--bundle", str(ilvm_run / "model.aiecg"), *files, "--out", str(table), "--engine",
                 "onnx", "--clinical", str(synth_cohort / "cohort.csv"), "--id-column", "eid", "--workers", "1"],
                lambda: any(scratch.glob("aiecg-onnx-*")), 1.5, check)  # from the on-the-fly export on


def _measure(synth_cohort: Path, ilvm_run: Path, out: Path, scratch: Path) -> Case:
    files = _ecg_files(synth_cohort, 8)

    def check(summary: dict | None) -> None:
        if (out / "measurements.csv").exists():  # written last: the beats beside it are of the same run
            measured = read_csv(out / "measurements.csv")
            assert sorted(measured["file"]) == sorted(files)
            beats = read_csv(out / "beats.csv")
            assert len(beats) > 0 and set(beats["file"]) <= set(files)
        else:
            assert summary is None, "a summary of measurements that were never written"

    return Case(["measure", *files, "--out", str(out), "--beats", "--workers", "2"], out.exists, 1.5, check)


def _explain(synth_cohort: Path, ilvm_run: Path, out: Path, scratch: Path) -> Case:
    def check(summary: dict | None) -> None:
        if (out / "explain.json").exists():  # the summary only with the attributions and waves it describes
            described = json.loads((out / "explain.json").read_text())
            with np.load(out / "attributions.npz") as arrays:
                assert len(arrays["ids"]) == described["n"] == arrays["ecg_attr"].shape[0]
            assert len(read_csv(out / "waves.csv")) > 0
        else:
            assert summary is None, "a summary of attributions that were never written"
        figures = out / "figures"
        if figures.exists():  # only with the summary, and then every figure of an FCN with clinical inputs
            assert (out / "explain.json").exists()
            drawn = sorted(p.name for p in figures.iterdir() if p.stat().st_size > 0)
            assert drawn == sorted(f"explain_{kind}_explanations__out_.{ext}" for kind in EXPLAIN_FIGURES
                                   for ext in ("png", "svg")), drawn
        elif summary is not None:
            pytest.fail("a finished explain without its figures")

    return Case(["explain", "--bundle", str(ilvm_run / "model.aiecg"), "--cohort", str(synth_cohort / "cohort.yaml"),
                 "--out", str(out), "--steps", "8", "--max-participants", "8", "--sanity-participants", "2"],
                (out / "waves.csv").exists, 2.0, check)  # within the figures, drawn after the files


def _report(synth_cohort: Path, ilvm_run: Path, out: Path, scratch: Path) -> Case:
    def check(summary: dict | None) -> None:
        page = out / "index.html"
        if page.exists():  # every figure and table the page links is there, whole
            linked = re.findall(r'(?:src|href)="((?:figures|tables)/[^"#]+)"', page.read_text())
            assert linked, "a page that links no figure or table"
            missing = [name for name in linked if not (out / name).is_file() or (out / name).stat().st_size == 0]
            assert not missing, f"the page links files that are missing or empty: {missing[:5]}"
        else:
            assert summary is None, "a summary of a page that was never written"

    return Case(["report", str(ilvm_run), "--out", str(out)], (out / "figures").exists, 2.5, check)


def _export(synth_cohort: Path, ilvm_run: Path, out: Path, scratch: Path) -> Case:
    from aiecg.workflows.export import check_export

    onnx = out / "model.onnx"

    def check(summary: dict | None) -> None:
        if onnx.exists():  # an intact export of this bundle
            check_export(onnx, load_bundle(ilvm_run / "model.aiecg"))
        else:
            assert summary is None, "a summary of an export that was never written"

    return Case(["export", "--bundle", str(ilvm_run / "model.aiecg"), "--onnx", str(onnx)],
                out.exists, 2.0, check)  # from the output check on: loading, tracing, writing


@pytest.mark.parametrize(("command", "signum"), [(_predict, signal.SIGINT), (_measure, signal.SIGKILL),
                                                 (_explain, signal.SIGKILL), (_report, signal.SIGINT),
                                                 (_export, signal.SIGKILL)], ids=lambda c: getattr(c, "__name__", c))
def test_a_killed_command_leaves_its_outputs_whole_or_absent_and_nothing_running(synth_cohort, ilvm_run, tmp_path,
                                                                                   command, signum):
    """Killed at a seeded moment after its work began: no process left, no temporary file after Ctrl-C (after
    SIGKILL only hidden ones, which no reader takes for an output), and each output absent or whole."""
    out, scratch, stdout = tmp_path / "out", tmp_path / "scratch", tmp_path / "stdout.json"
    scratch.mkdir()
    case = command(synth_cohort, ilvm_run, out, scratch)
    delay = random.Random(f"{case.argv[0]}{signum}").uniform(0.0, case.window)
    moment = f"signal {signum} {delay:.2f} s after aiecg {case.argv[0]} began"
    with open(stdout, "w") as sink:
        process = _start(case.argv, stdout=sink, TMPDIR=str(scratch))  # scratch: where its temporary folders go
        deadline = time.monotonic() + 120
        while process.poll() is None and not case.started() and time.monotonic() < deadline:
            time.sleep(0.01)
        pids, err = _kill_after(process, stdout, signum, delay)
    assert survivors(pids) == set(), f"processes left running ({moment})"
    assert "Traceback" not in err, err
    left = _temporaries(tmp_path)
    if signum == signal.SIGKILL:  # no clean-up can run: what is left is hidden, never taken for an output
        left = [name for name in left if not Path(name).name.startswith(".")]
    assert left == [], f"temporary files left ({moment})"
    case.check(_summary(stdout))
