"""``aiecg prepare`` as a cluster job array (docs/cluster.md): N shard processes running at once, each its own
``python -m aiecg prepare --shard K/N``, then ``--merge-only``, give exactly the one-process store."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiecg.cli import main as aiecg
from tests.conftest import kill_tree

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STORE_FILES = ("median.npy", "beats.npy", "index.parquet", "errors.csv")


def _prepare(cohort: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "aiecg.cli", "-q", "prepare", "--cohort", str(cohort), "--out", str(out),
               "--chunk-size", "4", "--workers", "1", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait(processes: list[subprocess.Popen]) -> list[str]:
    try:
        outputs = [p.communicate(timeout=300)[0] for p in processes]
    finally:
        for p in processes:
            kill_tree(p)
    assert [p.returncode for p in processes] == [0] * len(processes), "\n".join(o[-2000:] for o in outputs)
    return outputs


def test_shards_as_separate_processes_merge_to_the_one_process_store(tmp_path, capsys):
    data = tmp_path / "data"
    assert aiecg(["-q", "synth", "--out", str(data), "--n", "26", "--seed", "8", "--workers", "2"]) == 0
    cohort = data / "cohort.yaml"
    assert aiecg(["-q", "prepare", "--cohort", str(cohort), "--out", str(tmp_path / "whole"), "--chunk-size", "4",
                  "--workers", "1"]) == 0

    array = tmp_path / "array"
    _wait([_prepare(cohort, array, "--shard", f"{k}/3") for k in (1, 2)])  # 7 parts: shards 1, 2 hold 0,1,3,4,6
    assert len(list((array / "parts").glob("part-*.npz"))) == 5
    assert not (array / "median.npy").exists()
    capsys.readouterr()
    assert aiecg(["-q", "prepare", "--cohort", str(cohort), "--out", str(array), "--merge-only"]) == 2
    assert "missing" in capsys.readouterr().err
    # the last shard (in process) merges; a merge job may run again
    assert aiecg(["-q", "prepare", "--cohort", str(cohort), "--out", str(array), "--chunk-size", "4", "--workers", "1",
                  "--shard", "3/3"]) == 0
    assert aiecg(["-q", "prepare", "--cohort", str(cohort), "--out", str(array), "--merge-only"]) == 0
    for name in STORE_FILES:
        assert (tmp_path / "whole" / name).read_bytes() == (array / name).read_bytes(), name
