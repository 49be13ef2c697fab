"""A run folder written as one set: a reader sees the complete outputs of one run, or no folder at all.

``train`` and ``finetune`` (and ``tune``'s retrained ``best/`` run, which is a training run) write many files
over minutes or hours (configuration, splits, epochs, checkpoint, bundle, results, metrics). They write them into
a hidden sibling ``.NAME.partial`` and rename it to ``NAME`` only when the last file is written, so a run
killed at any moment (SIGKILL, Ctrl-C, a full disk) never leaves a folder that mixes a finished run with a
half-written one, nor a folder that looks finished.

A run that stops after training began keeps its partial folder (its checkpoint), and ``--resume`` continues
there; a run that stops before that leaves nothing. A finished run replaces an earlier one of the same name in
one step at the end (the earlier one stays whole until then).

A search's own folder is not one set: many workers share it while the study runs (``tune.yaml``, ``trials.csv``
and the study database are rewritten as trials finish, each file atomically); ``tune finalise`` removes an earlier
``best.json``/``importance.csv`` before it retrains and writes them after ``best/`` is in place.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiecg.files import OutputError, check_output

log = logging.getLogger("aiecg")

PARTIAL = ".partial"
REPLACED = ".replaced"
RUN_MARKERS = ("config.yaml", "metrics.json", "model.aiecg")
"""Files whose presence shows that a folder holds an earlier run (which a new run of that name replaces)."""


def partial_dir(final: str | Path) -> Path:
    """The hidden sibling a run writes into before it becomes ``final`` (made absolute)."""
    final = Path(final).resolve()
    return final.with_name(f".{final.name}{PARTIAL}")


def _replaced_dir(final: Path) -> Path:
    return final.with_name(f".{final.name}{REPLACED}")


def publish(work: Path, final: Path) -> None:
    """Rename the finished ``work`` folder to ``final``, replacing an earlier ``final`` as a whole."""
    replaced = _replaced_dir(final)
    shutil.rmtree(replaced, ignore_errors=True)
    if final.exists():
        os.replace(final, replaced)
    os.replace(work, final)
    shutil.rmtree(replaced, ignore_errors=True)


@contextmanager
def run_output(final: str | Path, resume: bool = False, writer: bool = True, flag: str = "--out",
               keep_if: str | None = "checkpoint.pt") -> Iterator[Path]:
    """Yield the folder a run writes into (``.NAME.partial`` beside ``final``); rename it to ``final`` when the
    block ends without an error.

    Args:
        final: the run folder the user asked for.
        resume: continue an unfinished run (its partial folder), or a finished one (copied to a partial folder
            first, so that it stays whole until the resumed run ends).
        writer: False on the other ranks of a distributed run: they only read (a checkpoint to resume from);
            rank 0 creates, publishes and cleans up.
        flag: the option that names ``final`` (for error messages).
        keep_if: a file whose presence makes an unfinished run worth keeping for ``--resume`` (None: the
            command cannot resume; an unfinished run leaves nothing).

    Raises:
        OutputError: ``final`` is a file, a folder holding anything but an earlier run (which publishing would
            delete), or its parent folder cannot be written (before any work).
    """
    final = Path(final).resolve()  # "." or "runs/.." name a real folder: the one a rename would replace
    if final.parent == final:
        raise OutputError(f"cannot write a run to {flag} {final}: pass a folder for the run's outputs")
    work = partial_dir(final)
    if not writer:
        yield work if work.exists() or not final.exists() else final
        return
    if final.exists() and not final.is_dir():
        raise OutputError(f"cannot write to {flag} {final}: it is a file, not a folder; pass a folder")
    if final.is_dir() and any(final.iterdir()) and not any((final / name).exists() for name in RUN_MARKERS):
        raise OutputError(f"{flag} {final} holds other files and no earlier run; a finished run replaces its "
                          "folder as a whole, so pass a new or empty folder (or an earlier run's folder)")
    check_output(final.parent, flag=flag)
    shutil.rmtree(_replaced_dir(final), ignore_errors=True)  # left by a run killed while it was publishing
    if not resume:
        shutil.rmtree(work, ignore_errors=True)  # an earlier run's unfinished outputs: this run starts afresh
    elif not work.exists() and final.exists():
        shutil.copytree(final, work)
    work.mkdir(exist_ok=True)
    try:
        yield work
    except BaseException:
        if keep_if is not None and (work / keep_if).exists():
            log.warning("the unfinished run is kept in %s; --resume continues it", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        raise
    publish(work, final)
