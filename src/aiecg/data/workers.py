"""Supervised worker processes: a task that crashes, hangs or exhausts memory becomes one failed outcome.

``concurrent.futures`` pools give up as a whole when one worker dies (``BrokenProcessPool``), and a task that
never returns stalls them for ever. Here every task runs in a child process (even with one worker); the parent
knows which task each worker holds, so a dead worker (segfault in a C library, ``os.abort``, the kernel's OOM
killer) or one past its time limit is blamed on exactly that task, replaced, and the batch goes on.

Workers die with their parent: on Linux the kernel kills them when the parent dies (``PR_SET_PDEATHSIG``), and
on every platform a watchdog thread exits once the parent pid changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import faulthandler
import multiprocessing as mp
import os
import resource
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from aiecg.threads import cpu_budget, use_threads

OK, ERROR, OUT_OF_MEMORY, CRASHED, TIMED_OUT = "ok", "error", "out_of_memory", "crashed", "timed_out"
"""Kinds of :class:`Outcome`."""

_PR_SET_PDEATHSIG = 1
_WATCHDOG_SECONDS = 0.5


@dataclass(frozen=True)
class Limits:
    """Bounds on one task.

    Attributes:
        timeout_s: wall-clock seconds a task may run before its worker is killed (None: no limit).
        memory_mb: address space a worker may add to what it held at start (``RLIMIT_AS``; None: no limit).
    """

    timeout_s: float | None = 300.0
    memory_mb: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one task: ``kind`` is ``ok`` (``value`` is the result), ``error`` (an exception escaped the
    task; ``detail`` names it), ``out_of_memory``, ``crashed`` (the worker died) or ``timed_out``."""

    kind: str
    value: Any = None
    detail: str = ""


PROCESSING_ERROR = "processing_error"
"""Status of the error row of a task whose exception escaped it."""


def failure_row(outcome: Outcome, limits: Limits | None = None) -> tuple[str, str]:
    """THE error row of a failed worker, as ``prepare``, ``measure`` and ``predict`` report it: (status, reason).

    ``limits``, where the command has flags for them, adds how to raise them (``--record-timeout``,
    ``--max-memory-mb``) to a time-out or an out-of-memory reason.
    """
    if outcome.kind == ERROR:
        return PROCESSING_ERROR, f"processing failed: {outcome.detail}"
    if outcome.kind == CRASHED:
        return CRASHED, f"the reader crashed on this file (its worker process {outcome.detail})"
    if outcome.kind == TIMED_OUT:
        hint = "; raise --record-timeout if such files are expected" if limits is not None else ""
        return TIMED_OUT, f"{outcome.detail}{hint}"
    if outcome.kind == OUT_OF_MEMORY:
        if limits is not None and limits.memory_mb:
            return OUT_OF_MEMORY, (f"ran out of memory (each worker may use {limits.memory_mb} MB more than at start; "
                                   "raise --max-memory-mb if such files are expected)")
        return OUT_OF_MEMORY, "ran out of memory"
    raise ValueError(f"outcome {outcome.kind!r} is not a failure")


def caught_out_of_memory(reason: str) -> bool:
    """Whether a record's error reason is a ``MemoryError`` the reader caught (:mod:`aiecg.io.registry` makes it
    a read error): the worker's memory limit was reached, and the row is reported as ``out_of_memory``."""
    return "MemoryError" in reason or "ran out of memory" in reason


def record_failure(status: str, reason: str, limits: Limits | None = None) -> tuple[str, str]:
    """THE (status, reason) of a record a worker returned: unchanged, unless the reader ran out of memory (then
    the out-of-memory row of :func:`failure_row`, with how to raise ``--max-memory-mb``)."""
    if status != OK and caught_out_of_memory(reason):
        return failure_row(Outcome(OUT_OF_MEMORY), limits)
    return status, reason


def die_with_parent(parent_pid: int) -> None:
    """Make this process die when ``parent_pid`` does: the kernel's parent-death signal, plus a watchdog (used by
    the pool's workers, and by the ranks of a ``torchrun`` whose agent is killed)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still holds
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watchdog() -> None:
        while True:
            time.sleep(_WATCHDOG_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watchdog, name="aiecg-parent-watchdog", daemon=True).start()


def _virtual_size() -> int:
    """This process's current address-space size in bytes (0 where /proc is absent)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(memory_mb: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _virtual_size() + memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_main(conn: Connection, parent_pid: int, memory_mb: int | None, close_fds: tuple[int, ...],
                 function: Callable[..., Any], threads: int) -> None:
    die_with_parent(parent_pid)
    use_threads(threads)  # this worker's share of the command's CPU budget (aiecg.threads)
    faulthandler.disable()  # a crash is reported by the parent as the task's outcome, not as a dump here
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the workers
    for fd in close_fds:  # e.g. the parent's store lock: it must not outlive the parent in a worker
        try:
            os.close(fd)
        except OSError:
            pass
    if memory_mb is not None:
        _limit_memory(memory_mb)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        key, args = message
        try:
            outcome = Outcome(OK, function(*args))
        except MemoryError:
            outcome = Outcome(OUT_OF_MEMORY)
        except Exception as exc:
            outcome = Outcome(ERROR, detail=f"{type(exc).__name__}: {exc}")
        try:
            conn.send((key, outcome))
        except MemoryError:
            conn.send((key, Outcome(OUT_OF_MEMORY)))


def _context() -> mp.context.BaseContext:
    # fork: a worker starts in milliseconds (restarts after a crash are cheap) and sees the parent's reader
    # registry; elsewhere spawn, the only safe start method on macOS and Windows.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


class _Worker:
    def __init__(self, function: Callable[..., Any], limits: Limits, close_fds: tuple[int, ...], threads: int):
        context = _context()
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, name="aiecg-worker", daemon=True,
                                       args=(child, os.getpid(), limits.memory_mb, close_fds, function, threads))
        self.process.start()
        child.close()
        self.key: Any = None
        self.started = 0.0

    def give(self, key: Any, args: tuple) -> None:
        self.key, self.started = key, time.monotonic()
        self.conn.send((key, args))

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=2)
        self.kill()


def describe_exit(exitcode: int | None) -> str:
    """A worker's exit code in words ('died of SIGSEGV', 'exited with status 1')."""
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            return f"died of {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"died of signal {-exitcode}"
    return f"exited with status {exitcode}"


def run_supervised(function: Callable[..., Any], tasks: Iterable[tuple[Any, tuple]], workers: int = 1,
                   limits: Limits | None = None, close_fds: tuple[int, ...] = (),
                   threads: int | None = None) -> Iterator[tuple[Any, Outcome]]:
    """Run ``function(*args)`` for every ``(key, args)`` in ``tasks`` in ``workers`` child processes.

    Yields ``(key, Outcome)`` as tasks finish (not in task order). A worker that dies or runs past
    ``limits.timeout_s`` is killed and replaced; its task's outcome says so. Closing the generator early stops
    every worker. Each worker computes with ``threads`` threads (default: its share of the command's CPU budget,
    :meth:`aiecg.threads.CpuBudget.per_worker`).
    """
    limits = limits or Limits()
    threads = threads if threads is not None else cpu_budget().per_worker(workers)
    pending = deque(tasks)
    idle: list[_Worker] = []
    busy: list[_Worker] = []
    try:
        while pending or busy:
            while pending and len(busy) < max(1, workers):
                worker = idle.pop() if idle else _Worker(function, limits, close_fds, threads)
                worker.give(*pending.popleft())
                busy.append(worker)
            timeout = None
            if limits.timeout_s is not None:
                now = time.monotonic()
                timeout = max(0.0, min(w.started + limits.timeout_s - now for w in busy))
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=timeout))
            for worker in list(busy):
                outcome = None
                if worker.conn in ready or worker.process.sentinel in ready:
                    try:
                        key, outcome = worker.conn.recv() if worker.conn.poll() else (None, None)
                    except (EOFError, OSError):
                        outcome = None
                    if outcome is None:  # the worker died holding its task
                        worker.process.join(timeout=5)
                        outcome = Outcome(CRASHED, detail=describe_exit(worker.process.exitcode))
                        worker.kill()
                    else:
                        idle.append(worker)
                elif limits.timeout_s is not None and time.monotonic() - worker.started >= limits.timeout_s:
                    worker.kill()
                    outcome = Outcome(TIMED_OUT, detail=f"timed out after {limits.timeout_s:g} s")
                if outcome is not None:
                    busy.remove(worker)
                    yield worker.key, outcome
    finally:
        for worker in busy:
            worker.kill()
        for worker in idle:
            worker.stop()
