"""Store plumbing: the one-writer lock, stale temporary files, and write failures as one clear StoreError."""

import errno
import json
import os
import socket
import subprocess
import sys

import pytest

from aiecg.data.store import StoreBusyError, StoreError, StoreLock, remove_temp_files, writing
from aiecg.files import atomic_write_bytes, temp_path


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    first = StoreLock(tmp_path / ".lock", "store S").acquire()
    info = json.loads((tmp_path / ".lock").read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    with pytest.raises(StoreBusyError, match=rf"store S is being written by another aiecg prepare \(pid "
                                             rf"{os.getpid()} on host {socket.gethostname()}, started 20"):
        StoreLock(tmp_path / ".lock", "store S").acquire()
    with pytest.raises(StoreBusyError):
        StoreLock(tmp_path / ".lock", "store S").acquire(shared=True)
    first.release()
    assert (tmp_path / ".lock").read_text() == ""  # unsigned on release
    StoreLock(tmp_path / ".lock", "store S").acquire().release()


def test_shared_holders_coexist_and_keep_out_an_exclusive_one(tmp_path):
    a = StoreLock(tmp_path / ".lock", "store S").acquire(shared=True)
    b = StoreLock(tmp_path / ".lock", "store S").acquire(shared=True)
    with pytest.raises(StoreBusyError, match="a sharded run"):
        StoreLock(tmp_path / ".lock", "store S").acquire()
    a.release()
    b.release()
    StoreLock(tmp_path / ".lock", "store S").acquire().release()


def test_the_lock_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from aiecg.data.store import StoreLock; "
         f"StoreLock(Path({str(tmp_path / '.lock')!r}), 's').acquire(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError, match=f"pid {holder.pid} "):
            StoreLock(tmp_path / ".lock", "s").acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = StoreLock(tmp_path / ".lock", "s").acquire()  # the kernel released the dead holder's lock
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    keep = [tmp_path / "median.npy", tmp_path / ".lock", tmp_path / ".hidden", tmp_path / "x.tmp"]
    for path in keep:
        path.write_bytes(b"k")
    stale = [temp_path(tmp_path / "median.npy"), tmp_path / ".index.parquet.123.tmp",
             tmp_path / ".part-000003.npz.9.tmp"]
    for path in stale:
        path.write_bytes(b"s")
    removed = remove_temp_files(tmp_path, owned=lambda name: name != "part-000003.npz")
    assert sorted(removed) == sorted(stale[:2])
    assert all(p.exists() for p in keep) and stale[2].exists()
    assert remove_temp_files(tmp_path) == [stale[2]]


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "the disk is full"),
                                             (errno.EROFS, "the file system is read-only"),
                                             (errno.EACCES, "permission denied")])
def test_write_failures_become_one_store_error(tmp_path, code, words):
    with pytest.raises(StoreError, match=rf"cannot write the store {tmp_path}: {words} \(.*x.npy\); free space"):
        with writing(tmp_path):
            raise OSError(code, os.strerror(code), str(tmp_path / "x.npy"))


def test_a_folder_under_a_regular_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="a part of the path is a file, not a folder"):
        with writing(tmp_path / "file" / "store"):
            atomic_write_bytes(tmp_path / "file" / "store" / "m.json", b"{}")
