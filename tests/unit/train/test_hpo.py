"""Search space, parameter mapping, storage URLs, stale-trial reaping and the trial table (Optuna, in process)."""

import threading
import time

import optuna
import pytest

from aiecg.config import RunConfig
from aiecg.errors import ConfigError
from aiecg.train import hpo


def test_default_space_is_the_reference_space_plus_rebalancing_for_categorical_targets():
    regression = {p.name: p for p in hpo.load_space(None, categorical=False)}
    assert set(regression) == {"optimizer", "lr", "batch_size", "arch", "batch_norm", "max_pool", "conv_dropout",
                               "head_dropout"}
    assert regression["lr"].choices == (1e-4, 1e-3, 1e-2) and regression["batch_size"].choices == (16, 32, 64, 128)
    assert (regression["conv_dropout"].low, regression["conv_dropout"].high, regression["conv_dropout"].step) == (
        0.0, 0.8, 0.1)
    assert regression["head_dropout"].to_dict() == {"low": 0.0, "high": 0.8, "step": 0.1}
    categorical = {p.name for p in hpo.load_space(None, categorical=True)}
    assert categorical - set(regression) == {"sampling", "loss_weighting"}


def test_yaml_space_replaces_the_default_and_bad_ones_name_the_problem(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: {choices: [1e-4, 3e-3]}\nhead_hidden: {low: 16, high: 64, step: 16}\n")
    params = hpo.load_space(path, categorical=True)
    assert [p.name for p in params] == ["lr", "head_hidden"]
    assert params[0].choices == (1e-4, 3e-3)  # YAML reads 1e-4 as a string; it is a number here
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    value = params[1].suggest(trial)
    assert isinstance(value, int) and value in (16, 32, 48, 64)
    for text, message in (("seed: {choices: [1, 2]}", "unknown setting 'seed'"),
                          ("lr: {choices: []}", "'choices' is empty"),
                          ("lr: {low: 0.1}", "both 'low' and 'high'"),
                          ("lr: {low: 1, high: 0}", "low <= high"),
                          ("lr: {low: 0, high: 0.1, log: true}", "a log-scale range needs low > 0, got 0"),
                          ("lr: {low: -1e-3, high: 0.1, log: true}", "a log-scale range needs low > 0"),
                          ("lr: {low: 1e-4, high: 0.1, log: yes please}", "'log' must be true or false"),
                          ("lr: {low: 1e-4, high: 0.1, step: 0}", "'step' must be a positive number, got 0"),
                          ("lr: {low: 1e-4, high: 0.1, step: 0.01, log: true}", "give 'step' or 'log', not both"),
                          ("batch_size: {low: 16, high: 64, step: 100}", "'step' 100 is larger than the range"),
                          ("lr: {low: 1e-4, hihg: 0.1}", r"unknown key\(s\) \['hihg'\]"),
                          ("lr: {low: .nan, high: 0.1}", "finite numbers low <= high"),
                          ("batch_norm: {low: false, high: true}", "finite numbers low <= high"),
                          ("[1, 2]", "expected a mapping")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=message) as error:
            hpo.load_space(path, categorical=False)
        assert str(path) in str(error.value)
    with pytest.raises(ConfigError, match="not found"):
        hpo.load_space(tmp_path / "missing.yaml", categorical=False)


def test_apply_params_routes_each_setting():
    config = hpo.apply_params(RunConfig(model_kwargs={"head_hidden": 32}), {
        "optimizer": "sgd", "lr": 0.01, "batch_size": 64, "arch": "fcn_zhou2024", "batch_norm": False,
        "conv_dropout": 0.30000000000000004, "sampling": "oversample", "loss_weighting": True})
    assert (config.fit.optimizer, config.fit.lr, config.fit.batch_size, config.fit.sampling) == (
        "sgd", 0.01, 64, "oversample")
    assert config.arch == "fcn_zhou2024" and config.loss_weighting is True
    assert config.model_kwargs == {"head_hidden": 32, "batch_norm": False, "conv_dropout": 0.3}


def test_storage_urls(tmp_path):
    journal = hpo.open_storage(f"journal://{tmp_path}/a/study.log")
    assert type(journal).__name__ == "JournalStorage"
    assert type(hpo.open_storage(str(tmp_path / "b" / "study.journal"))).__name__ == "JournalStorage"
    assert type(hpo.open_storage(f"sqlite:///{tmp_path}/c/study.db")).__name__ == "RDBStorage"
    with pytest.raises(ConfigError, match="give sqlite"):
        hpo.open_storage("study.db")
    with pytest.raises(ConfigError, match="cannot open"):
        hpo.open_storage("nosuchdialect://x")


def test_a_worker_joining_with_another_space_is_refused(tmp_path):
    url = f"journal://{tmp_path}/study.log"
    space = hpo.load_space(None, categorical=False)
    hpo.open_study(url, "s", space, "hyperband", 3, 0, 0)
    hpo.open_study(url, "s", space, "halving", 3, 0, 1)  # same space: joins
    with pytest.raises(ConfigError, match="another space"):
        hpo.open_study(url, "s", space[:2], "hyperband", 3, 0, 2)


def test_stale_running_trial_is_failed_and_requeued_once(tmp_path):
    study = hpo.open_study(f"journal://{tmp_path}/study.log", "s", hpo.load_space(None, False), "none", 3, 0, 0)
    alive, dead = study.ask(), study.ask()
    for trial in (alive, dead):
        trial.suggest_categorical("lr", [1e-4, 1e-3])
    alive.set_user_attr("heartbeat", time.time())
    dead.set_user_attr("heartbeat", time.time() - 100)
    assert hpo.reap_stale(study, grace=10) == [dead.number]
    assert hpo.reap_stale(study, grace=10) == []
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[alive.number] == "RUNNING" and states[dead.number] == "FAIL"
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == dead.number
    retry = study.ask()  # the next trial asked for takes the queued parameters
    assert retry.suggest_categorical("lr", [1e-4, 1e-3]) == dead.params["lr"]
    assert retry.user_attrs["retry_of"] == dead.number


def test_run_worker_stops_at_the_requested_finished_trials_and_the_table_has_its_columns(tmp_path):
    study = optuna.create_study(storage=hpo.open_storage(f"journal://{tmp_path}/study.log"), study_name="s",
                                sampler=optuna.samplers.RandomSampler(seed=1),
                                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3))

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        for epoch in (1, 2, 3):
            trial.report(x + 1.0 / epoch, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned
        return x + 1.0 / 3

    assert hpo.run_worker(study, objective, n_trials=9, heartbeat=0.2, worker=3) == 9
    assert hpo.run_worker(study, objective, n_trials=9, heartbeat=0.2, worker=4) == 0
    table = hpo.write_trials(study, tmp_path / "trials.csv")
    assert list(table.columns) == ["number", "state", "value", "best_epoch", "epochs", "worker", "retry_of",
                                   "duration_s", "datetime_start", "datetime_complete", "param_x", "val_loss_curve"]
    assert sorted(table["number"]) == list(range(9)) and set(table["worker"]) == {3}
    pruned = table[table["state"] == "PRUNED"]
    assert len(pruned) >= 1 and (pruned["epochs"] <= 3).all() and (pruned["epochs"] < 3).any()
    assert (table.loc[table["state"] == "COMPLETE", "epochs"] == 3).all()


def test_workers_creating_a_new_sqlite_study_together_all_join_it(tmp_path):
    """Four workers open the same new SQLite study at once (a barrier releases them together): without the lock
    beside the database, most of them die on Optuna's table creation (alembic's version table, 'table already
    exists'); with it, every one joins the one study."""
    url, space = f"sqlite:///{tmp_path}/study.db", hpo.load_space(None, categorical=False)
    barrier, errors, studies = threading.Barrier(4), [], []

    def worker(number: int) -> None:
        barrier.wait()
        try:
            studies.append(hpo.open_study(url, "s", space, "none", 3, 0, number))
        except Exception as exc:  # noqa: BLE001 - any failure is the race this test is about
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(studies) == 4
    assert [s.study_name for s in optuna.get_all_study_summaries(hpo.open_storage(url))] == ["s"]


def test_an_interrupted_trial_fails_and_its_setting_is_queued_again(tmp_path):
    """Ctrl-C in a trial: the trial is FAIL (not left RUNNING for the reaper), its setting waits for the next one."""
    study = hpo.open_study(f"journal://{tmp_path}/study.log", "s", hpo.load_space(None, False), "none", 3, 0, 0)

    def objective(trial):
        trial.suggest_categorical("lr", [1e-4, 1e-3])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hpo.run_worker(study, objective, n_trials=2, heartbeat=0.1)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[1].user_attrs["retry_of"] == 0
    assert study.ask().suggest_categorical("lr", [1e-4, 1e-3]) == trials[0].params["lr"]  # the same setting again
