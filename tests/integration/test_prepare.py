"""``aiecg prepare``: bad files are reported and skipped; a killed run resumes to the same store; shards merge."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from aiecg.cli import main as aiecg
from tests.conftest import kill_when

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
    return [sys.executable, "-m", "aiecg.cli", "-q", "prepare", "--cohort", str(cohort_yaml), "--out", str(out),
            "--chunk-size", "4", *extra]


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
    subprocess.run(_prepare(cohort_yaml, tmp_path / "whole"), check=True, capture_output=True)
    process = subprocess.Popen(_prepare(cohort_yaml, tmp_path / "killed"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed" / "parts"
    kill_when(process, lambda: parts.exists() and len(list(parts.glob("part-*.npz"))) >= 3)
    assert not (tmp_path / "killed" / "median.npy").exists()
    subprocess.run(_prepare(cohort_yaml, tmp_path / "killed"), check=True, capture_output=True)
    for name in STORE_FILES:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name


def test_shards_merge_into_the_same_store(cohort, tmp_path):
    cohort_yaml, _ = cohort
    subprocess.run(_prepare(cohort_yaml, tmp_path / "whole"), check=True, capture_output=True)
    for k in (1, 2, 3):
        assert aiecg(["-q", "prepare", "--cohort", str(cohort_yaml), "--out", str(tmp_path / "sharded"),
                      "--chunk-size", "4", "--shard", f"{k}/3", "--workers", "1"]) == 0
    for name in STORE_FILES:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "sharded" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "sharded" / "manifest.json").read_text())
    assert manifest["n_records"] == 48 and manifest["leads"][:2] == ["I", "II"]
    assert np.load(tmp_path / "sharded" / "median.npy").shape == (48, 12, 400)
