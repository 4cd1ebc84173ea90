"""A run killed (SIGKILL, Ctrl-C, SIGTERM) at a random tile resumes to the same bytes as an
uninterrupted run."""

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


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    """A slide, the command's options, and the uninterrupted result."""
    root = tmp_path_factory.mktemp("kill")
    ckpt = tiny_checkpoint(root / "ckpt")
    src = write_tiff(root / "a.tif", textured(384, 320), tile=(64, 64))
    args = [
        "--engine",
        str(ckpt),
        "--backend",
        "torch",
        "--threads",
        "1",
        "--quiet",
        "--tile",
        "96",
        "--halo",
        "16",
        "--batch",
        "1",
        "--sync-every",
        "0",
    ]
    clean = root / "clean.ome.zarr"
    assert CliRunner().invoke(main, [str(src), "-o", str(clean), *args]).exit_code == 0
    return src, args, clean


def _sigint_default() -> None:
    """In the child: Ctrl-C as in a terminal, even when the tests run in the background of a
    non-interactive shell (which starts them with SIGINT ignored, and Python keeps that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_run_resumes_to_identical_result(tmp_path: Path, setup: tuple, sig: signal.Signals) -> None:
    src, args, clean = setup
    out = tmp_path / "killed.ome.zarr"
    journal = partial_dir(out) / JOURNAL_NAME
    k = int(np.random.default_rng().integers(2, 12))
    proc = subprocess.Popen(
        # every engine call sleeps 0.2 s: the run is still going when the signal lands
        [sys.executable, "-m", "tests.faults.wrapped_run", "--slow", "0.2", "--", str(src), "-o", str(out), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=_sigint_default,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_file() and journal.read_text().count("\n") >= k:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()}"
        proc.send_signal(sig)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode()
    if sig != signal.SIGKILL:  # Ctrl-C and kill stop cleanly and say how to resume
        assert proc.returncode == 130
        last = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()][-1]
        assert last.startswith("error: interrupted") and "--resume" in last
    assert not out.exists() and partial_dir(out).is_dir()
    result = CliRunner().invoke(main, [str(src), "-o", str(out), *args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr
    for level in (0, 1):
        assert np.array_equal(zarr_stack.open_level(out, level)[:], zarr_stack.open_level(clean, level)[:])
