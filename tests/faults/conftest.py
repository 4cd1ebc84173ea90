"""Shared pieces of the fault suite: a tiny model, a tiny exported engine, the CLI, and checks.

Every refusal is checked the same way (`refused`): exit code 2, exactly one stderr line
starting `error:`, no traceback, and (by the tests) nothing new in the output folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mfpi_deploy.run.state import JOURNAL_NAME, partial_dir
from tests.mfpi_deploy.run.helpers import textured, tiny_checkpoint, write_tiff

ROOT = Path(__file__).resolve().parents[2]
# Options of every run here: one tile size throughout, so the engine's kernels are set up once.
SMALL = ["--backend", "torch", "--threads", "1", "--quiet", "--tile", "96", "--halo", "16"]
# ... and of the runs that are killed, locked or filled up: 12 batches of one tile (cores of 64 px).
RUN_ARGS = [*SMALL, "--batch", "1", "--sync-every", "0"]
BATCHES = 12


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An RGB MFPINet of width 4, saved as a checkpoint (runs with --backend torch)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("faults-ckpt") / "ckpt", channels=3, width=4)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory, ckpt: Path) -> Path:
    """The same model exported to an engine folder (torchscript exporter: about a second)."""
    from mfpi_deploy.export.api import ExportOptions, export_model

    options = ExportOptions(tiles=(32,), batches=(1,), threads=1, gate_tile=32, gate_count=1, exporter="torchscript")
    return export_model(ckpt, tmp_path_factory.mktemp("faults-engine") / "engine", options, log=lambda _: None)


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory, ckpt: Path) -> tuple[Path, list[str], Path]:
    """The slide, the options and the uninterrupted OME-TIFF every interrupted run must equal."""
    root = tmp_path_factory.mktemp("faults-clean")
    src = write_tiff(root / "slide.tif", textured(200, 136), tile=(32, 32))  # output 400x272: a 2-level pyramid
    args = ["--engine", str(ckpt), *RUN_ARGS]
    clean = root / "clean.ome.tif"
    result = cli([str(src), "-o", str(clean), *args])
    assert result.exit_code == 0, result.output
    return src, args, clean


def cli(args: list[str], command: str = "run") -> Result:
    if command == "run":
        from mfpi_deploy.cli.run import main
    else:
        from mfpi_deploy.cli.export import main
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result: Result) -> str:
    """The one error line of a refused command (exit code 2, no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def finished(output: Path) -> list[str]:
    """What a finished run leaves in its folder: the output and its hidden record of settings."""
    from mfpi_deploy.run.state import record_path

    return sorted([output.name, record_path(output).name])


def start_run(args: list[str], *hooks: str) -> subprocess.Popen:
    """mfpi-run in a subprocess (tests/faults/wrapped_run.py hooks), stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.wrapped_run", *hooks, "--", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
    )


def wait_for_batches(proc: subprocess.Popen, output: Path, count: int, timeout: float = 60) -> None:
    """Until the run has journaled `count` batches (and is still alive)."""
    journal = partial_dir(output) / JOURNAL_NAME
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"run ended or stalled before {count} batches: {proc.stderr.read().decode()}")
