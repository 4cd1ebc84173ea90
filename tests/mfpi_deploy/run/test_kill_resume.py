"""A run killed with SIGKILL at a random tile resumes to the same bytes as an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfpi_deploy.cli.run import main
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run.state import JOURNAL_NAME, partial_dir
from tests.mfpi_deploy.run.helpers import textured, tiny_checkpoint, write_tiff

ROOT = Path(__file__).resolve().parents[3]


def test_sigkill_then_resume_is_identical(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    src = write_tiff(tmp_path / "a.tif", textured(384, 320), tile=(64, 64))
    args = ["--engine", str(ckpt), "--backend", "torch", "--threads", "1", "--quiet",
            "--tile", "96", "--halo", "16", "--batch", "1", "--sync-every", "0"]
    out = tmp_path / "killed.ome.zarr"
    journal = partial_dir(out) / JOURNAL_NAME
    k = int(np.random.default_rng().integers(2, 12))
    proc = subprocess.Popen([sys.executable, "-m", "mfpi_deploy.cli.run", str(src), "-o", str(out), *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_file() and journal.read_text().count("\n") >= k:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and partial_dir(out).is_dir()
    result = CliRunner().invoke(main, [str(src), "-o", str(out), *args, "--resume"])
    assert result.exit_code == 0, result.output
    clean = tmp_path / "clean.ome.zarr"
    assert CliRunner().invoke(main, [str(src), "-o", str(clean), *args]).exit_code == 0
    for level in (0, 1):
        assert np.array_equal(zarr_stack.open_level(out, level)[:], zarr_stack.open_level(clean, level)[:])
