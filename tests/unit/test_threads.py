"""The CPU thread budget (aiecg.threads): where it comes from, how it is divided, and that workers obey it."""

import pytest
import torch

from aiecg.data.workers import OK, run_supervised
from aiecg.errors import ConfigError
from aiecg.threads import (
    ENV_VAR,
    CpuBudget,
    affinity_cores,
    cgroup_cpu_quota,
    child_environment,
    cpu_budget,
    local_world_size,
    prepare_openmp,
    use_threads,
)
from aiecg.train.loop import epoch_batches


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_an_explicit_budget_wins_over_the_environment_and_the_scheduler():
    env = {ENV_VAR: "3", "SLURM_CPUS_PER_TASK": "1"}
    assert cpu_budget(5, environ=env, quota=None) == CpuBudget(5, "--threads")
    assert cpu_budget(environ=env, quota=None) == CpuBudget(3, ENV_VAR)


def test_the_smallest_of_affinity_quota_and_slurm_decides():
    cores = affinity_cores()
    assert cpu_budget(environ={}, quota=None) == CpuBudget(cores, "CPU affinity")
    assert cpu_budget(environ={}, quota=cores + 4.0).cores == cores  # a quota above the mask changes nothing
    if cores >= 2:
        assert cpu_budget(environ={}, quota=0.5) == CpuBudget(1, "cgroup CPU quota")
        assert cpu_budget(environ={"SLURM_CPUS_PER_TASK": "1"}, quota=None) == CpuBudget(1, "SLURM_CPUS_PER_TASK")
    assert cpu_budget(environ={"SLURM_CPUS_PER_TASK": str(cores + 10)}, quota=None).cores == cores


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_budget_is_one_clear_error_naming_its_source(value):
    with pytest.raises(ConfigError, match=ENV_VAR):
        cpu_budget(environ={ENV_VAR: value})
    with pytest.raises(ConfigError, match="--threads"):
        cpu_budget(int(value) if value.lstrip("-").isdigit() else 0, environ={})


def test_the_budget_is_divided_between_workers_never_below_one_thread():
    budget = CpuBudget(8, "--threads")
    assert [budget.per_worker(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert budget.workers(None) == 8 and budget.workers(3) == 3
    assert local_world_size({"LOCAL_WORLD_SIZE": "4"}) == 4 and local_world_size({}) == 1


def test_cgroup_v2_quota_is_the_tightest_over_the_process_group_and_its_ancestors(tmp_path):
    root = tmp_path / "cgroup"
    (root / "job" / "step").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "job" / "cpu.max").write_text("250000 100000\n")  # 2.5 cores
    (root / "job" / "step" / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "self-cgroup"
    proc.write_text("0::/job/step\n")
    assert cgroup_cpu_quota(proc, root) == pytest.approx(2.5)
    (root / "job" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(proc, root) is None
    assert cpu_budget(environ={}, quota=2.5).cores == min(3, affinity_cores())  # 2.5 cores: 3 threads


def test_cgroup_v1_quota(tmp_path):
    root = tmp_path / "cgroup"
    group = root / "cpu,cpuacct" / "slurm" / "job1"
    group.mkdir(parents=True)
    (group / "cpu.cfs_quota_us").write_text("400000\n")
    (group / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    proc = tmp_path / "self-cgroup"
    proc.write_text("4:memory:/slurm/job1\n3:cpu,cpuacct:/slurm/job1\n")
    assert cgroup_cpu_quota(proc, root) == pytest.approx(4.0)


def test_openmp_threads_spin_briefly_unless_the_user_chose_and_children_get_their_share():
    env: dict[str, str] = {}
    prepare_openmp(env)
    assert env == {"GOMP_SPINCOUNT": "10000"}
    for chosen in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}):
        env = dict(chosen)
        prepare_openmp(env)
        assert env == chosen
    child = child_environment(2, {"PATH": "/bin"})
    assert child["OMP_NUM_THREADS"] == child["MKL_NUM_THREADS"] == child[ENV_VAR] == "2" and child["PATH"] == "/bin"


def _threads_in_worker() -> tuple[int, list[int]]:
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), sorted({pool["num_threads"] for pool in threadpool_info()})


def test_pool_workers_compute_with_their_share_of_the_budget(restore_torch_threads):
    torch.set_num_threads(2)  # the parent's pool must not leak into the workers
    outcomes = dict(run_supervised(_threads_in_worker, [(k, ()) for k in range(2)], workers=2, threads=1))
    assert all(o.kind == OK for o in outcomes.values())
    assert {(o.value[0], tuple(o.value[1])) for o in outcomes.values()} == {(1, (1,))}


def test_use_threads_sets_torch_and_blas_pools(restore_torch_threads):
    from threadpoolctl import threadpool_info

    assert use_threads(1) == 1 and torch.get_num_threads() == 1
    assert {pool["num_threads"] for pool in threadpool_info()} == {1}


def test_every_row_is_trained_on_once_per_epoch_even_when_the_last_batch_is_too_small_to_share():
    order = torch.arange(163)
    batches = epoch_batches(order, 32, least=4)  # batch norm (2 rows) on 2 ranks
    assert [len(b) for b in batches] == [32, 32, 32, 32, 35]
    assert torch.equal(torch.cat(batches), order)
    assert [len(b) for b in epoch_batches(order, 32, least=1)] == [32] * 5 + [3]  # no merge when not needed
    assert epoch_batches(torch.arange(3), 32, least=4) == []  # too few rows for one step at all
    assert [len(b) for b in epoch_batches(torch.arange(33), 32, least=2)] == [33]
