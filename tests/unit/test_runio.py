"""A run folder is written as one set, and never at the cost of a folder that holds something else."""

from __future__ import annotations

import pytest

from aiecg.config import FinetuneRunConfig
from aiecg.errors import ConfigError
from aiecg.files import OutputError
from aiecg.runio import partial_dir, run_output
from aiecg.workflows.train import finetune_run


def test_a_finished_run_replaces_an_earlier_run_of_its_name(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "metrics.json").write_text("{}")
    (final / "old.csv").write_text("old")
    with run_output(final, keep_if=None) as work:
        assert work == partial_dir(final) and work != final
        (work / "metrics.json").write_text('{"new": 1}')
    assert sorted(p.name for p in final.iterdir()) == ["metrics.json"] and not partial_dir(final).exists()


def test_a_folder_holding_other_files_is_refused_before_any_work_and_kept(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for given in (folder, "."):
        monkeypatch.chdir(folder)
        with pytest.raises(OutputError, match="holds other files and no earlier run"):
            with run_output(given, keep_if=None):
                raise AssertionError("no work may start")
        assert (folder / "notes.txt").read_text() == "mine"
    assert not partial_dir(folder).exists()


def test_fine_tuning_into_the_folder_of_its_own_bundle_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.aiecg").write_bytes(b"not read: the check comes first")
    config = FinetuneRunConfig(bundle=str(run / "model.aiecg"), cohort=str(tmp_path / "cohort.yaml"), out=str(run))
    with pytest.raises(ConfigError, match="holds the bundle being fine-tuned"):
        finetune_run(config, progress=False)
    assert (run / "model.aiecg").exists()


def test_ctrl_c_during_a_held_write_waits_for_it_and_then_interrupts(tmp_path):
    import os
    import signal

    from aiecg.files import atomic_write, interrupts_held

    target = tmp_path / "checkpoint.pt"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs as a background job
    signal.signal(signal.SIGINT, signal.default_int_handler)  # what an interactive run has
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held(), atomic_write(target, "wb") as handle:
            handle.write(b"first half ")
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the write
            handle.write(b"second half")
    assert target.read_bytes() == b"first half second half"  # written whole, then interrupted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an ignored Ctrl-C (a background job) stays ignored
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before if before is not None else signal.default_int_handler)


def test_temporary_files_of_a_killed_writer_are_swept_when_the_folder_is_next_written(tmp_path):
    import os
    import subprocess
    import sys

    from aiecg.files import TMP_SUFFIX, atomic_write_text, host_tag, temp_path

    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)  # a process that has exited: as after a SIGKILL mid-write
    here = host_tag()
    assert temp_path(tmp_path / "names" / "x.csv").name == f".x.csv.{os.getpid()}-{here}{TMP_SUFFIX}"
    dead = tmp_path / f".predictions.csv.{gone}-{here}{TMP_SUFFIX}"
    live = tmp_path / f".metrics.json.{os.getppid()}-{here}{TMP_SUFFIX}"  # a writer that still runs keeps its file
    elsewhere = tmp_path / f".part-000001.npz.{gone}-{'0' * 8 if here != '0' * 8 else '1' * 8}{TMP_SUFFIX}"
    unnamed = tmp_path / f".index.parquet.{gone}{TMP_SUFFIX}"  # no host: its machine is unknown, so it is kept
    other = [tmp_path / "notes.tmp", tmp_path / f".hidden.{gone}.txt",  # not atomic_write's
             tmp_path / f".huge.csv.{10**20}-{'f' * 8}{TMP_SUFFIX}"]  # an id no process has, another machine's
    for path in (dead, live, elsewhere, unnamed, *other):
        path.write_text("half")
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / f".x.csv.{gone}-{here}{TMP_SUFFIX}"  # another folder: swept when that one is written
    impossible = tmp_path / "sub" / f".y.csv.{10**20}-{here}{TMP_SUFFIX}"  # os.kill raises OverflowError for it
    nested.write_text("half")
    impossible.write_text("half")
    atomic_write_text(tmp_path / "out.json", "{}")
    assert not dead.exists() and nested.exists()
    # another machine's writer on a shared file system (a prepare shard of a job array) may still be writing
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(
        p.name for p in (live, elsewhere, unnamed, other[1], other[2]))
    atomic_write_text(tmp_path / "sub" / "y.json", "{}")
    assert not nested.exists() and not impossible.exists() and (tmp_path / "out.json").read_text() == "{}"
