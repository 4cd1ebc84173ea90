"""write_atomic: whole files or nothing, with the usual file mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mfpi_deploy.fileio import write_atomic


def test_write_atomic_replaces_whole_file(tmp_path):
    p = write_atomic(tmp_path / "a.txt", "first version, longer")
    write_atomic(p, "second")
    assert p.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask  # the usual file mode


def test_write_atomic_writes_buffers_in_order(tmp_path):
    pixels = memoryview(bytes(range(5)))
    path = write_atomic(tmp_path / "f.bin", [b"head", pixels, bytearray(b"!")], durable=True)
    assert path.read_bytes() == b"head\x00\x01\x02\x03\x04!"


def test_write_atomic_leaves_old_file_and_no_temporary_on_failure(tmp_path):
    p = write_atomic(tmp_path / "a.json", b"old")

    with pytest.raises(TypeError):
        write_atomic(p, 12345)  # not str or bytes: the write fails half-way
    assert p.read_bytes() == b"old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json"]


def test_a_staging_folder_has_the_permissions_mkdir_gives(tmp_path):
    import stat

    from mfpi_deploy.fileio import staging_dir

    plain = tmp_path / "plain"
    plain.mkdir()
    staged = staging_dir(tmp_path, prefix=".engine.")
    assert staged.parent == tmp_path and staged.name.startswith(".engine.") and staged.is_dir()
    assert stat.S_IMODE(staged.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)  # not mkdtemp's 0700


def test_stale_staging_folders_of_dead_processes_are_removed(tmp_path):
    import socket
    import subprocess
    import sys

    from mfpi_deploy.fileio import remove_stale_staging, staging_dir

    mine = staging_dir(tmp_path, prefix=".engine.")  # this process is alive: kept
    gone = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from mfpi_deploy.fileio import staging_dir; print(staging_dir({str(tmp_path)!r}, '.engine.'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()  # a process that made one and exited without publishing it (as after kill -9)
    elsewhere = tmp_path / f".engine.{socket.gethostname()}x-1-abc.tmp"  # another host's: kept
    elsewhere.mkdir()
    other_out = staging_dir(tmp_path, prefix=".engine.v2.")  # another output's folder: not matched
    assert Path(gone).is_dir()
    assert remove_stale_staging(tmp_path, prefix=".engine.") == [Path(gone)]
    assert not Path(gone).exists() and mine.is_dir() and elsewhere.is_dir() and other_out.is_dir()
