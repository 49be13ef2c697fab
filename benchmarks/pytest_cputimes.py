"""A pytest plugin for the test suite's own cost (issue 19): CPU seconds and wall seconds per test.

CPU seconds are this process's plus those of every child process it waited for (subprocesses, torchrun and its
ranks, pool workers), from ``os.times()``; on a shared machine they move far less with the load than wall seconds
do, so they are what to compare between two runs taken at different loads. A session fixture counts towards the
first test that uses it. Writes ``{node id: [cpu_s, wall_s]}`` as JSON to ``$CPU_TIMES_OUT``::

    CPU_TIMES_OUT=/tmp/cpu.json PYTHONPATH=benchmarks .venv/bin/python -m pytest -q -p pytest_cputimes

Results: ``benchmarks/results/test_suite_durations.md``.
"""

from __future__ import annotations

import json
import os
import time

import pytest

_RECORDS: dict[str, list[float]] = {}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _cpu_seconds(), time.perf_counter()
    yield
    _RECORDS[item.nodeid] = [round(_cpu_seconds() - cpu, 3), round(time.perf_counter() - wall, 3)]


def pytest_sessionfinish(session):
    out = os.environ.get("CPU_TIMES_OUT")
    if out:
        with open(out, "w") as handle:
            json.dump(_RECORDS, handle, indent=0)
