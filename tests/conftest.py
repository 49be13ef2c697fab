"""Shared fixtures: paths to the real files in ../shared/data and tiny synthetic tables."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public ECG files beside the project; tests skip only where the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real ECG files not found at {SHARED_DATA} (they sit beside the project in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cardiosoft_xml(shared_data: Path) -> Path:
    return shared_data / "formats" / "ukb_cardiosoft" / "example-XML1.xml"


CLINICAL = {
    "binary": ["hypertension", "sex", "diabetes"],
    "categorical": {"smoking": [0, 1, 2]},
    "continuous": ["sbp", "age", "bmi"],
}


def make_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A small cohort table with the synthetic cohort's column names and plausible values."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    ilvm = np.where(sex == 1, rng.normal(53, 9, n), rng.normal(42, 7, n))
    return pd.DataFrame({
        "eid": np.arange(1000001, 1000001 + n),
        "sex": sex,
        "age": rng.uniform(45, 80, n).round(1),
        "bmi": rng.normal(27, 4, n).round(1),
        "sbp": rng.normal(138, 18, n).round(0),
        "hypertension": rng.integers(0, 2, n),
        "diabetes": rng.integers(0, 2, n),
        "smoking": rng.integers(0, 3, n),
        "ilvm": ilvm.round(1),
        "lvm": (ilvm * 1.9).round(1),
    })


def write_cohort(directory: Path, table: pd.DataFrame, **overrides) -> Path:
    """Write ``table`` and a cohort YAML mapping for it; returns the YAML path."""
    directory.mkdir(parents=True, exist_ok=True)
    table.to_csv(directory / "cohort.csv", index=False)
    mapping = {
        "name": "tiny", "table": "cohort.csv", "id_column": "eid",
        "sex": {"column": "sex", "male": 1, "female": 0},
        "targets": {"INDEXED_MASS": "ilvm", "MASS": "lvm"},
        "clinical": CLINICAL,
    }
    mapping.update(overrides)
    path = directory / "cohort.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120.0) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (a crash mid-run); fail if it finishes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not ready():
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.fail("the process finished before it could be killed; give it more work")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), children first found first."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session=True``, its group and every descendant, even those in
    sessions of their own (torchrun starts its workers that way); a no-op for a process that already ended and
    left nothing behind."""
    pids = _descendants(process.pid)
    for pid in [process.pid, *pids]:
        for kill in (lambda p: os.killpg(p, signal.SIGKILL), lambda p: os.kill(p, signal.SIGKILL)):
            try:
                kill(pid)
            except (ProcessLookupError, PermissionError):
                pass
    process.wait()
