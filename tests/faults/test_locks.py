"""Two runs on one output: the second is refused at once and the first finishes intact."""

from __future__ import annotations

import fcntl
import filecmp
import os
import time
from pathlib import Path

import pytest

from mfpi_deploy.run.lock import lock_path, output_lock
from mfpi_deploy.run.state import partial_dir
from tests.faults.conftest import cli, finished, listing, refused, start_run, wait_for_batches


def test_second_run_refused_while_first_runs(tmp_path: Path, clean_run: tuple) -> None:
    src, args, clean = clean_run
    out = tmp_path / "out.ome.tif"
    first = start_run([src, "-o", out, *args], "--slow", "0.05")
    try:
        wait_for_batches(first, out, 3)
        for extra in (["--resume"], ["--overwrite"]):  # joining the live partial run, or discarding it
            started = time.monotonic()
            line = refused(cli([src, "-o", out, *args, *extra]))
            assert time.monotonic() - started < 5
            assert f"another mfpi-run (pid {first.pid}) is writing {out}" in line, line
            assert first.poll() is None and partial_dir(out).is_dir()
        assert first.wait(120) == 0, first.stderr.read().decode()
    finally:
        if first.poll() is None:
            first.kill()
    assert filecmp.cmp(out, clean, shallow=False)  # the first run's output, intact
    assert listing(tmp_path) == finished(tmp_path / "out.ome.tif")


def test_lock_is_an_os_lock_held_once_and_removed(tmp_path: Path) -> None:
    out = tmp_path / "o.ome.tif"
    with output_lock(out) as path:
        assert path == lock_path(out) and path.is_file()
        with output_lock(out):  # re-entrant within the process (the CLI, then run_slide)
            pass
        fd = os.open(path, os.O_RDWR)  # another open file: the kernel refuses it the lock
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        assert path.read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()
