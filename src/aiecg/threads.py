"""The one place that decides how many CPU threads a command may use, and divides them between its workers.

PyTorch's default intra-op thread count is the machine's cores, not the job's share: on a cluster node where Slurm
allots 4 of 64 cores, or on a laptop running two jobs, every process starts one thread per core, and each worker
pool or DDP rank does it again. Oversubscribed OpenMP threads that busy-wait for each other then cost one to two
orders of magnitude (a demo training epoch took 60-140 s instead of about 3 s with two jobs on two cores).

The budget (:func:`cpu_budget`) is the smallest of the CPU affinity mask (``taskset``, cpusets), the cgroup CPU
quota (containers, Kubernetes limits, Slurm with cgroups) and ``SLURM_CPUS_PER_TASK``; an explicit ``--threads``
or the ``AIECG_THREADS`` environment variable overrides it. A command that starts workers divides the budget
between them (:meth:`CpuBudget.per_worker`), so that workers x threads <= the allotted cores.

:func:`prepare_openmp` must run before torch is imported (``import aiecg`` runs it when torch is not loaded yet):
it shortens how long an idle OpenMP thread spins before it sleeps (``GOMP_SPINCOUNT=10000`` instead of GNU
OpenMP's 300,000), so that jobs sharing cores do not burn each other's time, while a job alone keeps its speed
(measured on the demo's training: sleeping at once, ``OMP_WAIT_POLICY=PASSIVE``, cost 10% of a solo epoch; the
short spin cost nothing, and two concurrent jobs each kept about all of half the solo throughput). A wait policy
or spin count the user set is kept. This module never imports torch itself.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from aiecg.errors import ConfigError

ENV_VAR = "AIECG_THREADS"
"""Environment variable with the thread budget (what ``--threads`` sets on the command line)."""

CHILD_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Variables that numerical libraries in a child process read for their own thread count."""


@dataclass(frozen=True)
class CpuBudget:
    """The cores a command may use and what decided them.

    Attributes:
        cores: allotted cores (at least 1).
        source: what decided: ``--threads``, ``AIECG_THREADS``, ``SLURM_CPUS_PER_TASK``, ``cgroup CPU quota``,
            ``CPU affinity`` or ``CPU count``.
    """

    cores: int
    source: str

    def per_worker(self, workers: int) -> int:
        """Threads for each of ``workers`` concurrent processes: the budget divided between them, at least 1."""
        return max(1, self.cores // max(1, workers))

    def workers(self, requested: int | None) -> int:
        """The pool size: ``requested`` when given, else one worker per allotted core."""
        return max(1, requested) if requested is not None else self.cores

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


def affinity_cores() -> int:
    """Cores this process may run on (its affinity mask), or the machine's CPU count where there is no mask."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota_v2(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")  # "max 100000" or "200000 100000"
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    try:
        quota_us, period_us = float(quota or "-1"), float(period or "0")
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cgroup_cpu_quota(proc_cgroup: Path = Path("/proc/self/cgroup"),
                     root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 2.5), the tightest over its ancestors; None when
    unlimited or unknown. Reads cgroup v2 ``cpu.max`` and cgroup v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``."""
    text = _read(proc_cgroup)
    if text is None:
        return None
    quotas: list[float] = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not hierarchy or not path.startswith("/"):
            continue
        if controllers == "":  # cgroup v2: one unified hierarchy under root
            base, read = root, _quota_v2
        elif "cpu" in controllers.split(","):
            base = next((root / name for name in (controllers, "cpu", "cpu,cpuacct") if (root / name).is_dir()), None)
            if base is None:
                continue
            read = _quota_v1
        else:
            continue
        directory = base / path.lstrip("/")
        while True:  # the process's group and every ancestor up to the hierarchy's root
            quota = read(directory)
            if quota is not None:
                quotas.append(quota)
            if directory == base or base not in directory.parents:
                break
            directory = directory.parent
    return min(quotas) if quotas else None


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name} must be a whole number of threads >= 1, got {text!r}")
    return value


def cpu_budget(threads: int | None = None, environ: Mapping[str, str] | None = None,
               quota: float | None | bool = True) -> CpuBudget:
    """The CPU budget of this process.

    Args:
        threads: an explicit budget (``--threads``); it wins over everything else.
        environ: the environment to read ``AIECG_THREADS`` and ``SLURM_CPUS_PER_TASK`` from (default: os.environ).
        quota: the cgroup quota in cores to use instead of reading it (``True``: read it; ``None``: none).
    """
    environ = os.environ if environ is None else environ
    if threads is not None:
        return CpuBudget(_positive_int(str(threads), "--threads"), "--threads")
    if environ.get(ENV_VAR, "").strip():
        return CpuBudget(_positive_int(environ[ENV_VAR].strip(), ENV_VAR), ENV_VAR)
    budget = CpuBudget(affinity_cores(), "CPU affinity" if hasattr(os, "sched_getaffinity") else "CPU count")
    cgroup = cgroup_cpu_quota() if quota is True else quota
    if cgroup is not None and math.ceil(cgroup) < budget.cores:  # 2.5 cores of quota: 3 threads keep them busy
        budget = CpuBudget(max(1, math.ceil(cgroup)), "cgroup CPU quota")
    slurm = environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm.isdigit() and 0 < int(slurm) < budget.cores:
        budget = CpuBudget(int(slurm), "SLURM_CPUS_PER_TASK")
    return budget


def local_world_size(environ: Mapping[str, str] | None = None) -> int:
    """Training processes on this node (torchrun's ``LOCAL_WORLD_SIZE``; 1 outside torchrun)."""
    environ = os.environ if environ is None else environ
    text = environ.get("LOCAL_WORLD_SIZE", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1


OPENMP_SPIN_COUNT = "10000"
"""Busy-wait iterations of an idle GNU OpenMP thread before it sleeps (its default is 300,000)."""


def prepare_openmp(environ: dict[str, str] | None = None) -> None:
    """Before torch is imported: idle OpenMP threads spin briefly, then sleep (``GOMP_SPINCOUNT``), unless the user
    set a wait policy or a spin count."""
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT


def child_environment(threads: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for a child process that runs with ``threads`` threads (OpenMP, MKL, OpenBLAS and aiecg's
    own budget), e.g. a torchrun rank or a search worker."""
    environ = dict(os.environ if environ is None else environ)
    environ.update({name: str(threads) for name in CHILD_THREAD_VARIABLES})
    environ[ENV_VAR] = str(threads)
    prepare_openmp(environ)
    return environ


def use_threads(threads: int) -> int:
    """Limit this process to ``threads`` compute threads: torch's intra-op pool (when torch is loaded) and the
    BLAS/OpenMP pools of NumPy and SciPy (through threadpoolctl). Returns ``threads``."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn, a dependency
        return threads
    threadpool_limits(limits=threads)
    return threads


def apply_budget(threads: int | None = None, workers: int = 1) -> int:
    """Decide this process's share of the CPU budget (``threads`` or :func:`cpu_budget`, divided between
    ``workers`` concurrent processes such as torchrun's ranks on this node), apply it, log it and return it."""
    import logging

    budget = cpu_budget(threads)
    used = use_threads(budget.per_worker(workers))
    share = f", {workers} processes share it" if workers > 1 else ""
    logging.getLogger("aiecg").info("CPU threads: %d (budget %d from %s%s)", used, budget.cores, budget.source, share)
    return used
