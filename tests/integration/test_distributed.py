"""Two DDP processes under torchrun on CPU (gloo): disjoint shards that cover the epoch, identical weights."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from aiecg.runio import partial_dir
from aiecg.threads import cpu_budget
from tests.conftest import kill_tree
from tests.processes import descendants, survivors

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _start_torchrun(*args: str, output: int = subprocess.PIPE) -> subprocess.Popen:
    """torchrun with 2 local processes, in its own process group (its ranks each start a session of their own)."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    command = [torchrun, "--nproc_per_node", "2", "--standalone", *args] if torchrun else \
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """torchrun with 2 local processes in its own process group, killed whole if the test fails or hangs."""
    process = _start_torchrun(*args)
    command = process.args
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        kill_tree(process)
    assert process.returncode == 0, output[-4000:]
    return subprocess.CompletedProcess(command, process.returncode, output)


WORKER = str(ROOT / "tests" / "integration" / "ddp_fit_worker.py")
N_TRAIN = 83  # 5 global batches of 16, then 3 rows: too few for batch norm on 2 ranks, so they join the 5th


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory) -> Path:
    """One torchrun of ``ddp_fit_worker.py`` on 2 ranks (N_TRAIN rows): two epochs (``rank{0,1}.pt``, ``run/`` and
    ``epoch1/``, the run folder as it stood after epoch 1), then the same ranks resume a copy of ``epoch1/`` to the
    end (``cut/``)."""
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(WORKER, str(out), str(N_TRAIN), "2", "then-resume")
    return out


def test_one_epoch_on_two_ranks_sees_every_sample_once_and_ends_with_identical_weights(two_epochs):
    rank0, rank1 = (torch.load(two_epochs / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    first0, first1 = rank0["seen_epoch1"], rank1["seen_epoch1"]
    assert len(first0) + len(first1) == N_TRAIN
    assert not set(first0) & set(first1)
    np.testing.assert_array_equal(np.sort(np.concatenate([first0, first1])), np.arange(N_TRAIN))
    assert len(first0) == 42 and len(first1) == 41
    assert len(rank0["seen"]) + len(rank1["seen"]) == 2 * N_TRAIN  # the second epoch: every row once again
    assert rank0["state"].keys() == rank1["state"].keys()
    for key in rank0["state"]:
        assert torch.equal(rank0["state"][key], rank1["state"][key]), key
    assert rank0["val_loss"] == rank1["val_loss"] and rank0["train_loss"] == rank1["train_loss"]
    assert np.isfinite(rank0["val_loss"])
    # only rank 0 wrote the run's files: one epoch row and one checkpoint after epoch 1, two rows at the end
    assert (two_epochs / "epoch1" / "epochs.csv").read_text().count("\n") == 2
    assert sorted(p.name for p in (two_epochs / "epoch1").iterdir()) == ["checkpoint.pt", "epochs.csv"]
    assert sorted(p.name for p in (two_epochs / "run").iterdir()) == ["checkpoint.pt", "epochs.csv"]


def test_a_resumed_two_rank_run_ends_with_the_weights_of_an_uninterrupted_one(two_epochs):
    # cut/run started as a copy of epoch1/ (a run stopped after epoch 1) and was resumed to epoch 2 on both ranks
    runs = (two_epochs, two_epochs / "cut")
    whole, resumed = (torch.load(run / "rank1.pt", weights_only=False)["state"] for run in runs)
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    assert (two_epochs / "cut" / "run" / "epochs.csv").read_text().count("\n") == 3


def test_torchrun_aiecg_train_writes_one_run(synth_cohort, tmp_path):
    result = _torchrun("-m", "aiecg.cli", "-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"), "--epochs", "2",
                       "--out", str(tmp_path / "runs"), "--name", "ddp", "--device", "cpu")
    run = tmp_path / "runs" / "ddp"
    assert (run / "model.aiecg").exists() and (run / "metrics.json").exists()
    assert (run / "epochs.csv").read_text().count("\n") == 3
    assert np.isfinite(json.loads((run / "metrics.json").read_text())["training"]["best_val_loss"])
    assert '"rank": 1' in result.stdout  # rank 1 trained, reported its rank and wrote nothing
    # the node's CPU budget is divided between the two ranks, and the run's config says what each used
    assert yaml.safe_load((run / "config.yaml").read_text())["fit"]["threads"] == cpu_budget().per_worker(2)
    assert not list(run.glob(".*.tmp"))


def test_killing_the_torchrun_agent_leaves_no_rank_running(synth_cohort, tmp_path):
    """SIGKILL reaches the agent alone (it cannot pass it on); the ranks, in sessions of their own, end with it
    (parent-death signal armed by aiecg.train.distributed.setup), and no run folder appears."""
    runs = tmp_path / "runs"
    process = _start_torchrun("-m", "aiecg.cli", "-q", "train", "--cohort", str(synth_cohort / "cohort.yaml"),
                              "--epochs", "1000", "--early-stopping", "1000", "--out", str(runs), "--name", "ddp",
                              "--device", "cpu", output=subprocess.DEVNULL)  # a pipe would wait for the ranks
    ranks: set[int] = set()
    try:
        epochs = partial_dir(runs / "ddp") / "epochs.csv"  # both ranks are training once rank 0 wrote an epoch
        deadline = time.monotonic() + 240
        while process.poll() is None and not epochs.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None and epochs.exists(), "the run ended or stalled before it could be killed"
        ranks = descendants(process.pid)
        assert len(ranks) >= 2, ranks
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert survivors(ranks, timeout=20) == set()
        assert not (runs / "ddp").exists()
    finally:
        for pid in survivors(ranks, timeout=0):
            os.kill(pid, signal.SIGKILL)
        kill_tree(process)
