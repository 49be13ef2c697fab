"""Training and fine-tuning killed at a random moment (SIGKILL, or SIGINT as Ctrl-C) leave their output folder
complete and consistent, or absent, and no process behind (issue 22).

Each run replaces an earlier, finished run of the same name with a run of another seed, and is killed at a moment
drawn at random after a chosen stage has begun (a file appears in its partial folder). Afterwards the folder is
either the earlier run, byte for byte, or the new run complete; the partial folder, when kept, is resumable.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aiecg.bundle import load_bundle
from aiecg.data.splits import Splits
from aiecg.runio import partial_dir
from tests.processes import descendants, survivors

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = ("config.yaml", "splits.json", "model.aiecg", "results.csv", "results_val.csv", "metrics.json")
TRAIN_FILES = (*RUN_FILES, "epochs.csv")
FINETUNE_FILES = (*RUN_FILES, "untuned/metrics.json", "stage0/epochs.csv")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    # SIGINT as in a terminal: a test runner started in the background passes SIGINT on as ignored
    return subprocess.Popen([sys.executable, "-m", "aiecg.cli", "-q", *argv], env=env, stdout=subprocess.DEVNULL,
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
