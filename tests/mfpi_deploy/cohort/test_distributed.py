"""One slide across Dask workers: byte-identical to a single-process run, also when a worker is
killed with SIGKILL mid-task and when the client is killed and rerun with --resume."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfpi_deploy.cli.run import main
from mfpi_deploy.cohort import ClusterOptions, EngineRef, run_slide_distributed
from mfpi_deploy.engine.identity import engine_identity
from mfpi_deploy.run import RunOptions
from mfpi_deploy.run.state import JOURNAL_GLOB, partial_dir
from tests.mfpi_deploy.cohort.conftest import engine_args, tree_bytes
from tests.mfpi_deploy.run.helpers import textured, write_tiff

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory, ckpt: Path) -> tuple[Path, dict[str, Path]]:
    """A 256x192 slide (3 rows of 4 tiles of 96 px, 6 batches of 2; 6 regions of one batch on 2
    workers) and its single-process outputs."""
    root = tmp_path_factory.mktemp("big")
    src = write_tiff(root / "big.tif", textured(192, 256), tile=(64, 64))
    clean = {}
    for suffix in (".ome.zarr", ".ome.tif"):
        clean[suffix] = root / f"clean{suffix}"
        result = CliRunner().invoke(main, [str(src), "-o", str(clean[suffix]), *engine_args(ckpt)])
        assert result.exit_code == 0, result.output
    return src, clean


def _journal_lines(out: Path) -> int:
    return sum(p.read_text().count("\n") for p in partial_dir(out).glob(JOURNAL_GLOB))


@pytest.mark.parametrize("suffix", [".ome.zarr", ".ome.tif"])
def test_distributed_slide_equals_single_process_byte_for_byte(
    tmp_path: Path, slide, ckpt: Path, dask_cluster, suffix: str
) -> None:
    src, clean = slide
    out = tmp_path / f"dist{suffix}"
    args = [str(src), "-o", str(out), *engine_args(ckpt), "--scheduler", dask_cluster.address]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "region(s) on 2 Dask worker(s)" in result.stderr and "on 2 Dask worker(s)" in result.stdout
    assert tree_bytes(out) == tree_bytes(clean[suffix])
    assert not partial_dir(out).exists()


def test_worker_killed_mid_task_gives_the_same_bytes(tmp_path: Path, slide, ckpt: Path, dask_cluster) -> None:
    """kill -9 of a worker process while it runs a region: Dask reruns that region elsewhere."""
    src, clean = slide
    out = tmp_path / "killed.ome.zarr"
    ref = EngineRef("torch", str(ckpt), threads=1, engine_id=engine_identity(ckpt))
    options = RunOptions(
        tile=96, halo=16, batch=2, sync_seconds=0, progress=False, log=lambda m: None, engine_id=ref.engine_id
    )
    done: list[object] = []

    def client() -> None:
        try:
            done.append(run_slide_distributed(src, out, ref, options, ClusterOptions(scheduler=dask_cluster.address)))
        except BaseException as exc:  # reported by the test thread
            done.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        if _journal_lines(out) >= 1:
            busy = [w for w, keys in dask_cluster.client.processing().items() if keys]
            if busy:
                victim = busy[0]
                pid = dask_cluster.client.run(os.getpid, workers=[victim])[victim]
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    thread.join(180)
    assert victim is not None, f"no worker was busy while the run went on: {done}"
    assert len(done) == 1 and not isinstance(done[0], BaseException), done
    assert tree_bytes(out) == tree_bytes(clean[".ome.zarr"])
    dask_cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_killed_client_resumes_to_the_same_bytes(tmp_path: Path, slide, ckpt: Path, dask_cluster) -> None:
    """kill -9 of the client: its running tasks stop once the resumed client owns the run."""
    src, clean = slide
    out = tmp_path / "client.ome.zarr"
    args = [str(src), "-o", str(out), *engine_args(ckpt), "--sync-every", "0", "--scheduler", dask_cluster.address]
    k = int(np.random.default_rng().integers(1, 4))  # batches finished before the kill (of 6)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfpi_deploy.cli.run", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and _journal_lines(out) < k:
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and partial_dir(out).is_dir()
    result = CliRunner().invoke(main, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr
    assert tree_bytes(out) == tree_bytes(clean[".ome.zarr"])


def test_ctrl_c_of_the_client_stops_the_tasks_and_resumes(tmp_path: Path, slide, ckpt: Path, dask_cluster) -> None:
    """Ctrl-C (KeyboardInterrupt in the client's main thread): running tasks are told to stop, one
    line says how to go on (exit 130), and --resume finishes to the same bytes."""
    src, clean = slide
    out = tmp_path / "ctrl-c.ome.zarr"
    args = [str(src), "-o", str(out), *engine_args(ckpt), "--sync-every", "0", "--scheduler", dask_cluster.address]
    stop = threading.Event()

    def press_ctrl_c() -> None:
        while not stop.is_set():
            if _journal_lines(out) >= 1:
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    presser = threading.Thread(target=press_ctrl_c)
    dask_cluster.client.run(_slow_engine, 0.5)  # the run must still be going when Ctrl-C lands
    # Ctrl-C as in a terminal, even when the tests run in the background of a non-interactive
    # shell, which starts them with SIGINT ignored (interrupt_main then does nothing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser.start()
    try:
        result = CliRunner().invoke(main, args)
    finally:
        stop.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
        dask_cluster.client.run(_normal_engine)
    assert result.exit_code == 130, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: interrupted") and "--resume" in last
    assert not out.exists() and partial_dir(out).is_dir()
    result = CliRunner().invoke(main, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert tree_bytes(out) == tree_bytes(clean[".ome.zarr"])


def _slow_engine(seconds: float) -> None:
    """On a worker: every engine call of the torch backend sleeps `seconds` first."""
    from mfpi_deploy.backends.torch_backend import TorchBackend

    run = TorchBackend.__dict__.get("_normal_run", TorchBackend.run)

    def slow_run(self, tiles, dpm=None):  # type: ignore[no-untyped-def]
        time.sleep(seconds)
        return run(self, tiles, dpm)

    TorchBackend._normal_run = run
    TorchBackend.run = slow_run


def _normal_engine() -> None:
    from mfpi_deploy.backends.torch_backend import TorchBackend

    if "_normal_run" in TorchBackend.__dict__:
        TorchBackend.run = TorchBackend.__dict__["_normal_run"]
        del TorchBackend._normal_run
