"""Supervised workers: a task that segfaults, aborts, hangs or exhausts memory is one outcome; the rest finish."""

import os
import signal
import subprocess
import sys
import time

import pytest

from aiecg.data.workers import CRASHED, ERROR, OK, OUT_OF_MEMORY, TIMED_OUT, Limits, describe_exit, run_supervised
from tests.processes import alive, survivors

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and /proc: Linux")


def _task(kind: str, value: int) -> int:
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "abort":
        os.abort()
    elif kind == "hang":
        time.sleep(600)
    elif kind == "hog":
        return len(bytearray(8 * 2**30))  # 8 GiB: beyond the worker's address-space limit
    elif kind == "raise":
        raise ValueError("odd data")
    elif kind == "pid":
        return os.getpid()
    return value * 2


@pytest.mark.parametrize("workers", [1, 2])
def test_each_failure_is_its_own_outcome_and_good_tasks_all_finish(workers):
    kinds = ["good", "segv", "good", "abort", "hang", "good", "hog", "raise", "good"]
    tasks = [(i, (kind, i)) for i, kind in enumerate(kinds)]
    outcomes = dict(run_supervised(_task, tasks, workers, Limits(timeout_s=3, memory_mb=512)))
    assert sorted(outcomes) == list(range(len(kinds)))
    assert {i: o.kind for i, o in outcomes.items()} == {
        0: OK, 1: CRASHED, 2: OK, 3: CRASHED, 4: TIMED_OUT, 5: OK, 6: OUT_OF_MEMORY, 7: ERROR, 8: OK}
    assert [outcomes[i].value for i in (0, 2, 5, 8)] == [0, 4, 10, 16]
    assert outcomes[1].detail == "died of SIGSEGV" and outcomes[3].detail == "died of SIGABRT"
    assert outcomes[4].detail == "timed out after 3 s"
    assert outcomes[7].detail == "ValueError: odd data"


def test_tasks_run_in_child_processes_even_with_one_worker_and_workers_are_stopped():
    outcomes = dict(run_supervised(_task, [(i, ("pid", 0)) for i in range(4)], workers=1))
    pids = {o.value for o in outcomes.values()}
    assert len(pids) == 1 and os.getpid() not in pids  # one reused child
    assert not survivors(pids, timeout=5)


def test_closing_the_generator_early_kills_busy_workers():
    results = run_supervised(_task, [(0, ("pid", 0)), (1, ("hang", 0))], workers=2, limits=Limits(timeout_s=None))
    key, outcome = next(results)
    assert key == 0 and outcome.kind == OK
    results.close()
    assert not survivors({outcome.value}, timeout=5)


def test_exit_codes_in_words():
    assert describe_exit(-11) == "died of SIGSEGV"
    assert describe_exit(-9) == "died of SIGKILL"
    assert describe_exit(3) == "exited with status 3"


PARENT = """
import sys, time
from aiecg.data.workers import Limits, run_supervised
from tests.unit.data.test_workers import _task
results = run_supervised(_task, [(0, ("pid", 0)), (1, ("hang", 0)), (2, ("hang", 0))], 3, Limits(timeout_s=None))
print(next(results)[1].value, flush=True)
time.sleep(600)
"""


def test_workers_die_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        worker = int(parent.stdout.readline())
        from tests.processes import descendants

        workers = descendants(parent.pid)
        assert worker in workers and len(workers) == 3 and all(alive(p) for p in workers)
    finally:
        parent.kill()
        parent.wait()
    assert not survivors(workers, timeout=10), "workers outlived their SIGKILLed parent"
