"""``aiecg tune`` end to end: worker processes sharing one journal-file study, one of them killed mid-trial, the
study resumed and finished by two workers, then the best setting retrained and tested once."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from aiecg.cli import main as aiecg
from aiecg.config import RunConfig
from aiecg.data.splits import Splits
from aiecg.train import hpo
from aiecg.workflows.tune import SearchData
from tests.conftest import kill_tree

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TRIALS = 8


@pytest.fixture
def cohort(synth_cohort) -> Path:
    """The session's prepared synthetic cohort (tests/conftest.py: 60 participants); the search only reads it."""
    return synth_cohort / "cohort.yaml"


def _worker(cohort: Path, journal: Path, out: Path, worker: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "aiecg.cli", "-q", "tune", "--cohort", str(cohort), "--search-only",
               "--trials", str(TRIALS), "--epochs", "3", "--pruner", "halving", "--storage", f"journal://{journal}",
               "--out", str(out), "--worker-id", str(worker), "--heartbeat", "0.5"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _states(journal: Path) -> list[str]:
    """Trial states; a running trial that has drawn all its parameters (it is training) reads 'TRAINING'."""
    if not journal.exists():
        return []
    try:
        study = optuna.load_study(study_name="aiecg-tune", storage=hpo.open_storage(f"journal://{journal}"))
    except KeyError:
        return []
    return ["TRAINING" if t.state.name == "RUNNING" and len(t.params) == len(hpo.DEFAULT_SPACE) else t.state.name
            for t in study.get_trials(deepcopy=False)]


def test_workers_share_a_journal_study_survive_a_kill_and_the_best_is_tested_once(cohort, tmp_path):
    journal, out = tmp_path / "shared" / "study.log", tmp_path / "tune"
    first = _worker(cohort, journal, out, worker=1)
    try:  # kill the first worker in the middle of a trial, after it finished two
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and first.poll() is None:
            states = _states(journal)
            if sum(s in hpo.FINISHED for s in states) >= 2 and "TRAINING" in states:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the worker finished before it could be killed"
    finally:
        kill_tree(first)
    states = _states(journal)
    killed = states.index("TRAINING")
    assert sum(s in hpo.FINISHED for s in states) < TRIALS

    workers = [_worker(cohort, journal, out, worker=w) for w in (1, 2)]
    try:
        outputs = [w.communicate(timeout=240)[0] for w in workers]
    finally:
        for w in workers:
            kill_tree(w)
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    reports = [json.loads(o[o.index("{"):]) for o in outputs]

    table = pd.read_csv(out / "trials.csv")
    assert table["number"].is_unique and sorted(table["number"]) == list(range(len(table)))
    finished = table[table["state"].isin(hpo.FINISHED)]
    assert TRIALS <= len(finished) <= TRIALS + 1  # two workers may both start the last trial
    assert (table["state"] == "PRUNED").sum() >= 1
    assert (table.loc[table["state"] == "PRUNED", "epochs"] <= 3).all()
    assert (table.loc[table["state"] == "COMPLETE", "epochs"] == 3).all()
    # the killed worker's trial failed (its heartbeat stopped) and its parameters ran again
    assert table.loc[table["number"] == killed, "state"].item() == "FAIL"
    retry = table[table["retry_of"] == killed]
    assert len(retry) == 1 and retry["state"].item() in hpo.FINISHED
    params = [c for c in table if c.startswith("param_")]
    assert retry[params].astype(str).iloc[0].equals(table.loc[table["number"] == killed, params].astype(str).iloc[0])
    assert sum(r["search"]["trials_run"] for r in reports) == len(table) - sum(s in hpo.FINISHED for s in states) - 1
    assert all(r["search"]["finished"] >= TRIALS for r in reports)

    # the best setting, retrained with the same seed, reproduces its trial's validation loss; tested once
    assert aiecg(["-q", "tune", "--cohort", str(cohort), "--final-only", "--epochs", "3", "--storage",
                  f"journal://{journal}", "--out", str(out)]) == 0
    best = json.loads((out / "best.json").read_text())
    complete = table[table["state"] == "COMPLETE"]
    assert best["best_trial"] == int(complete.loc[complete["value"].idxmin(), "number"])
    assert best["retrained_val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    assert np.isfinite(best["test"]["ilvm"]["mae"]["estimate"])
    results = pd.read_csv(out / "best" / "results.csv")
    assert sorted(results["eid"].astype(str)) == sorted(Splits.load(out / "best").test)
    importance = pd.read_csv(out / "importance.csv")
    assert set(importance["param"]) <= {p[len("param_"):] for p in params}


def test_the_search_never_loads_a_test_participant(cohort):
    data = SearchData.load(RunConfig(cohort=str(cohort)))
    assert len(data.test_ids) > 0
    assert not set(data.train.ids) & set(data.test_ids) and not set(data.val.ids) & set(data.test_ids)
    assert len(data.train) + len(data.val) + len(data.test_ids) <= 60


def test_bad_searches_are_one_line_errors(cohort, tmp_path, capsys):
    base = ["-q", "tune", "--cohort", str(cohort), "--out", str(tmp_path / "t")]
    space = tmp_path / "space.yaml"
    space.write_text("sampling: {choices: [none, oversample]}\n")
    for extra, message in ((["--space", str(tmp_path / "none.yaml")], "search-space file not found"),
                           (["--space", str(space)], "rebalance classes; target INDEXED_MASS is continuous"),
                           (["--final-only"], "no study 'aiecg-tune'"),
                           (["--storage", "study.db"], "give sqlite:///file.db")):
        capsys.readouterr()
        assert aiecg(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(("space", "message"), [
    ("lr: {low: -0.01, high: 0.1}", "lr = -0.01 cannot be trained with arch 'fcn' (the learning rate must be > 0"),
    ("conv_dropout: {low: 0.0, high: 1.5}", "conv_dropout = 1.5 cannot be trained with arch 'fcn' (dropout"),
    ("optimizer: {choices: [adam, rmsprop]}", "optimizer = 'rmsprop' cannot be trained with arch 'fcn'"),
    ("arch: {choices: [fcn, resnet]}", "arch = 'resnet' cannot be trained (unknown model 'resnet'"),
    ("arch: {choices: [fcn, resnet18]}\nmax_pool: {choices: [true, false]}",
     "max_pool = True cannot be trained with arch 'resnet18'"),
])
def test_a_space_that_no_trial_could_train_is_one_line_before_any_trial(cohort, tmp_path, capsys, space, message):
    """Every choice and both ends of every range are built (model, optimiser, scheduler) before the study is
    joined: the error names the setting and value, and no study or trial exists."""
    (tmp_path / "space.yaml").write_text(space + "\n")
    capsys.readouterr()
    assert aiecg(["-q", "tune", "--cohort", str(cohort), "--out", str(tmp_path / "t"), "--space",
                  str(tmp_path / "space.yaml"), "--trials", "1", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "t" / "study.db").exists()
