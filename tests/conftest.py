"""Shared fixtures: the real files in ../shared/data, tiny synthetic tables, and one synthetic cohort with trained
runs that the whole session shares.

Session fixtures (built once, on first use, and shared by every test that asks for them):

``synth_cohort``
    A prepared synthetic UK-Biobank-like cohort: 60 participants (``aiecg synth --n 60 --lvh-prevalence 0.25
    --seed 3``), then ``aiecg prepare`` with the default settings (median beats and per-beat arrays). The folder
    holds ``cohort.yaml``, ``cohort.csv``, ``cohort.parquet``, ``truth.parquet``, ``ecg/{eid}_20205_2_0.xml`` and
    ``store/``; pass ``synth_cohort / "cohort.yaml"`` to a command.
``ilvm_run``
    ``aiecg train`` on it: FCN, target INDEXED_MASS with the 16 clinical variables, 2 epochs, with the comparison
    rows (``--name fcn``). The run folder: ``model.aiecg``, ``results.csv``, ``metrics.json``, ``epochs.csv``, ...
``lvh_ecg_only_run``
    ``aiecg train`` on it: FCN, target LVH, ECG only (``--excl-meta``), 2 epochs (``--name lvh``).

They are read-only: a test writes its outputs under its own ``tmp_path`` (``--out``), and a test that must change
a cohort, store or run copies it there first (``shutil.copytree``). Each is checked when the session ends: a file
added, removed or rewritten in one fails the run (see :func:`unchanged`), because a test that changes them makes
every later test depend on the order the tests ran in. A new test that needs a prepared cohort or a trained
bundle takes these instead of building its own; a test that needs other data (another seed, size or device,
a store prepared with other settings) builds it in its own fixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# --- session fixtures: one synthetic cohort and its trained runs -------------------------------------------------

def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


@contextmanager
def unchanged(root: Path) -> Iterator[Path]:
    """Yield ``root``; on exit, fail if a file under it was added, removed or rewritten (size or mtime)."""
    before = _listing(root)
    yield root
    after = _listing(root)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, (f"a test changed the shared fixture {root} (copy it into tmp_path first): "
                         f"{changed[:10]}")


def _cli(*argv: str) -> None:
    from aiecg.cli import main

    assert main(["-q", *argv]) == 0, argv


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory) -> Iterator[Path]:
    """The session's prepared synthetic cohort (60 participants, seed 3); the folder of its ``cohort.yaml``."""
    data = tmp_path_factory.mktemp("synth_cohort") / "data"
    _cli("synth", "--out", str(data), "--n", "60", "--lvh-prevalence", "0.25", "--seed", "3", "--workers", "2")
    _cli("prepare", "--cohort", str(data / "cohort.yaml"), "--workers", "2")
    with unchanged(data):
        yield data


def _trained(synth_cohort: Path, tmp_path_factory, name: str, *argv: str) -> Iterator[Path]:
    runs = tmp_path_factory.mktemp("runs")
    _cli("train", "--cohort", str(synth_cohort / "cohort.yaml"), "--out", str(runs), "--name", name, *argv)
    with unchanged(runs / name):
        yield runs / name


@pytest.fixture(scope="session")
def ilvm_run(synth_cohort, tmp_path_factory) -> Iterator[Path]:
    """FCN on INDEXED_MASS with clinical variables, 2 epochs, trained on ``synth_cohort``; its run folder."""
    yield from _trained(synth_cohort, tmp_path_factory, "fcn", "--target", "INDEXED_MASS", "--epochs", "2")


@pytest.fixture(scope="session")
def lvh_ecg_only_run(synth_cohort, tmp_path_factory) -> Iterator[Path]:
    """FCN on LVH from the ECG alone (``--excl-meta``), 2 epochs, trained on ``synth_cohort``; its run folder."""
    yield from _trained(synth_cohort, tmp_path_factory, "lvh", "--target", "LVH", "--excl-meta", "--epochs", "2")
