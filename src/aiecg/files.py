"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

Write to a hidden temporary file beside the target (``.NAME.PID-HOST.tmp``), flush and fsync it, then rename it
over the target (atomic on POSIX file systems). A failure removes the temporary file, so nothing is left behind; a
writer killed with SIGKILL cannot, so the first write of a process into a folder removes the temporary files
there that this machine's processes wrote and whose process is gone (:func:`sweep_stale_temps`). HOST tags the
machine: a folder on a shared file system is written by several machines at once (the shards of a ``prepare``
job array), and another machine's process id says nothing here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, Any

from aiecg.errors import AiecgError

TMP_SUFFIX = ".tmp"
TEMP_PATTERN = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)(?:-(?P<host>[0-9a-f]{8}))?\.tmp$")
"""Names of :func:`atomic_write`'s temporary files (``.NAME.PID-HOST.tmp``; ``.NAME.PID.tmp`` before the host
was recorded)."""

WRITE_PROBLEMS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file is in the way of a folder",
    errno.EISDIR: "it is a folder, not a file",
}
"""What an ``OSError`` while writing means, in words a user can act on."""


class OutputError(AiecgError):
    """An output location cannot be written (checked before the work starts)."""


def write_problem(exc: OSError) -> str:
    """``exc`` (raised while writing) in words: the problem and the file."""
    problem = WRITE_PROBLEMS.get(exc.errno or 0, exc.strerror or str(exc))
    return problem + (f" ({exc.filename})" if exc.filename else "")


def check_output(path: str | Path, kind: str = "folder", flag: str = "--out") -> Path:
    """Make sure ``path`` can receive a command's outputs BEFORE the work starts, so a long run never ends in a
    traceback at its last step: a folder (``kind='folder'``) is created, a file's (``kind='file'``) parent
    folder is; a probe file is written and removed. An existing file is fine for a file output (it is
    replaced), not for a folder output, and the other way round.

    Raises:
        OutputError: one line naming the path, the problem and the flag to change.
    """
    path = Path(path)
    folder = path if kind == "folder" else path.parent
    if kind == "folder" and path.exists() and not path.is_dir():
        raise OutputError(f"cannot write to {flag} {path}: it is a file, not a folder; pass a folder")
    if kind == "file" and path.is_dir():
        raise OutputError(f"cannot write to {flag} {path}: it is a folder, not a file; pass a file name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".aiecg-write-probe.{os.getpid()}{TMP_SUFFIX}"
        with open(probe, "wb") as handle:
            handle.write(b"\0")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to {flag} {path}: {write_problem(exc)}; pass a writable location"
                          ) from None
    return path


@cache
def host_tag() -> str:
    """This machine in a temporary file's name: 8 hex digits of a hash of its host name."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def process_gone(pid: int) -> bool:
    """No process of this machine has this id (this process, and a live process of another user, are not gone)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: an id no process can have
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def remove_temp_files(folder: Path, owned: Callable[[str], bool] | None = None,
                      only_dead: bool = False) -> list[Path]:
    """Delete the temporary files (``.NAME.PID-HOST.tmp``) that killed writers left in ``folder``: those whose target
    ``owned(NAME)`` accepts (all without ``owned``), and with ``only_dead`` only those this machine wrote whose
    process is gone (without it, call only while holding a lock that makes them stale). Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:  # no such folder (yet), or unreadable: nothing to sweep
        return removed
    for path in entries:
        match = TEMP_PATTERN.match(path.name)
        if not match or (owned is not None and not owned(match["target"])):
            continue
        if only_dead and (match["host"] != host_tag() or not process_gone(int(match["pid"]))):
            continue  # another machine's (or, unnamed, any machine's) writer may still run
        if not path.is_file():
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


_SWEPT: set[Path] = set()


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Once per process and folder: remove the temporary files there whose writer, a process of this machine, is
    gone (SIGKILL leaves them; a live writer's are kept, whoever it is, and so are other machines')."""
    key = folder.absolute()
    if key in _SWEPT:
        return []
    _SWEPT.add(key)
    return remove_temp_files(key, only_dead=True)


def temp_path(path: Path) -> Path:
    """The hidden temporary file :func:`atomic_write` writes ``path`` through (unique per process); the first
    call for a folder sweeps the stale ones a killed writer left there (:func:`sweep_stale_temps`)."""
    sweep_stale_temps(path.parent)
    return path.with_name(f".{path.name}.{os.getpid()}-{host_tag()}{TMP_SUFFIX}")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; on success fsync it and rename it to ``path``."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it to the handler that was in place: a write that a
    KeyboardInterrupt would tear mid-way finishes first (torch's zip writer, interrupted, raises its own error over
    the interrupt, so the user got a traceback instead of the one line an interrupted run prints). An ignored
    SIGINT stays ignored; only the main thread receives signals, elsewhere the block runs as it is."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        if callable(previous):
            previous(signal.SIGINT, None)  # default_int_handler raises KeyboardInterrupt
        else:
            os.kill(os.getpid(), signal.SIGINT)  # SIG_DFL, restored: the default action


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    with atomic_write(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks: what ties a run to a file it started from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
