"""kill -9 at random points, then --resume: the OME-TIFF is byte-identical to an uninterrupted run."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.run.lock import lock_path
from mfpi_deploy.run.state import partial_dir
from tests.faults.conftest import BATCHES, cli, finished, listing, start_run, wait_for_batches

# Two points while tiles are computed, one after the last tile (while the output is finished). New points every
# run; one draw for all pytest-xdist workers of a run (they must collect the same tests), seeded by its run id.
_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID")
_RNG = np.random.default_rng(int(_RUN_ID, 16) if _RUN_ID else None)
POINTS = [*_RNG.choice(np.arange(1, BATCHES), size=2, replace=False).tolist(), BATCHES]


@pytest.mark.parametrize("batches_done", POINTS)
def test_kill_9_then_resume_is_byte_identical(tmp_path: Path, clean_run: tuple, batches_done: int) -> None:
    src, args, clean = clean_run
    out = tmp_path / "out.ome.tif"
    proc = start_run([src, "-o", out, *args], "--slow", "0.05", "--slow-finish", "2")
    try:
        wait_for_batches(proc, out, batches_done)
        proc.kill()  # SIGKILL: no handler runs, the kernel drops the lock
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and partial_dir(out).is_dir()
    assert lock_path(out).exists()  # the dead run's lock file is left behind ...
    result = cli([src, "-o", out, *args, "--resume"])  # ... and does not block the resume
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr
    assert filecmp.cmp(out, clean, shallow=False), f"killed after {batches_done} batches"
    assert listing(tmp_path) == finished(tmp_path / "out.ome.tif")  # no partial run, no lock file
