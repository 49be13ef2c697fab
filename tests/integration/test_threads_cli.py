"""The thread budget end to end: ``--threads`` and the CPU affinity mask decide the threads a training run uses,
and the run's config.yaml records the value (issue 19)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from aiecg.cli import main
from aiecg.threads import ENV_VAR, cpu_budget

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cohort(synth_cohort) -> Path:
    """The session's prepared synthetic cohort (tests/conftest.py); runs write under tmp_path."""
    return synth_cohort / "cohort.yaml"


def _train_args(cohort: Path, out: Path, name: str) -> list[str]:
    return ["-q", "train", "--cohort", str(cohort), "--epochs", "1", "--no-compare", "--device", "cpu",
            "--out", str(out), "--name", name]


def _threads_used(run: Path) -> int:
    return yaml.safe_load((run / "config.yaml").read_text())["fit"]["threads"]


def test_train_threads_1_uses_one_thread_and_says_so(cohort, tmp_path, caplog):
    before = torch.get_num_threads()
    try:
        with caplog.at_level("INFO", logger="aiecg"):
            assert main([*_train_args(cohort, tmp_path, "one"), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1  # what the run computed with
    finally:
        torch.set_num_threads(before)
    assert _threads_used(tmp_path / "one") == 1
    assert "CPU threads: 1 (budget 1 from --threads)" in caplog.text
    assert ENV_VAR not in os.environ  # the command's budget does not leak into its in-process caller


def test_without_threads_the_run_takes_the_budget_of_its_cpus(cohort, tmp_path):
    before = torch.get_num_threads()
    try:
        assert main(_train_args(cohort, tmp_path, "default")) == 0
    finally:
        torch.set_num_threads(before)
    assert _threads_used(tmp_path / "default") == cpu_budget().cores


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_a_run_pinned_to_one_core_uses_one_thread(cohort, tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in (ENV_VAR, "SLURM_CPUS_PER_TASK")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    first_core = str(min(os.sched_getaffinity(0)))
    result = subprocess.run(["taskset", "-c", first_core, sys.executable, "-m", "aiecg.cli",
                             *_train_args(cohort, tmp_path, "pinned")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _threads_used(tmp_path / "pinned") == 1
    assert "CPU threads: 1 (budget 1 from CPU affinity)" in result.stderr
