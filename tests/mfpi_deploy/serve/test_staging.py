"""`mfpi-serve --stage DIR` shares `mfpi-run`'s partial run both ways: batches the viewer computed
are done for `mfpi-run --resume`, batches an interrupted `mfpi-run` finished are served from disk,
and a partial run another process is writing is only read."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run.errors import RunInterrupted
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.pipeline import run_slide
from mfpi_deploy.run.state import RunState, partial_dir
from tests.mfpi_deploy.run.helpers import FailingBackend
from tests.mfpi_deploy.serve.conftest import client, make_server

ROOT = Path(__file__).resolve().parents[3]
N_TILES = 9  # the tiny slide: 3 x 3 engine tiles in batches of 2 -> batches {0,1} {2,3} {4,5} {6,7} {8}


class CountingBackend(Backend):
    """Counts the engine tiles it runs."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.tiles = inner, 0
        self.kind, self.spec, self.identity = inner.kind, inner.spec, inner.identity

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        self.tiles += len(tiles)
        return self.inner.run(tiles, dpm)


def staged_output(stage: Path) -> Path:
    return stage / "cells.mfp.ome.zarr"  # what `mfpi-run cells.tif --output` it shares


def get_plane(c, plane: int, col: int, row: int, level: int) -> np.ndarray:
    response = c.get(f"/slides/cells/{plane}_files/{level}/{col}_{row}.png")
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def test_batches_the_viewer_computed_are_done_for_mfpi_run_resume(tmp_path: Path, slide_path: Path, backend) -> None:
    stage = tmp_path / "stage"
    server = make_server([slide_path], backend, stage=stage)
    try:
        c = client(server)
        level = server.slides["cells"].geometry.max_level
        get_plane(c, 3, 0, 0, level)  # engine tile 0: batch 0 (tiles 0, 1)
        get_plane(c, 7, 2, 2, level)  # engine tile 8: batch 4 (tile 8)
        assert server.queue.wait_idle(10)  # batch-mates are counted just after a request is answered
        assert c.get("/stats").json()["engine_tiles_computed"] == 3
    finally:
        server.close()
    assert RunState(partial_dir(staged_output(stage))).done_batches() == {0, 4}

    logs: list[str] = []
    counting = CountingBackend(backend)
    summary = run_slide(
        slide_path, staged_output(stage), counting, RunOptions(progress=False, resume=True, log=logs.append)
    )
    assert any("2 batch(es) already done" in line for line in logs), logs
    assert summary.resumed and summary.tiles_computed == counting.tiles == N_TILES - 3

    fresh = tmp_path / "fresh" / "cells.mfp.ome.zarr"
    fresh.parent.mkdir()
    run_slide(slide_path, fresh, backend, RunOptions(progress=False, log=lambda _: None))
    levels = zarr_stack.level_count(fresh)
    assert zarr_stack.level_count(staged_output(stage)) == levels
    for k in range(levels):  # lossless: the very same values at every level
        assert np.array_equal(zarr_stack.open_level(staged_output(stage), k)[:], zarr_stack.open_level(fresh, k)[:])


def test_an_interrupted_mfpi_run_is_served_from_disk(
    tmp_path: Path, slide_path: Path, backend, reference: np.ndarray
) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    with pytest.raises(RunInterrupted):  # Ctrl-C at the third batch, as the run tests interrupt
        run_slide(
            slide_path,
            staged_output(stage),
            FailingBackend(backend, 2, KeyboardInterrupt()),
            RunOptions(progress=False, log=lambda _: None),
        )
    state = RunState(partial_dir(staged_output(stage)))
    assert state.done_batches() == {0, 1}  # engine tiles 0..3

    server = make_server([slide_path], backend, stage=stage)
    try:
        c = client(server)
        level = server.slides["cells"].geometry.max_level
        for col, row in [(0, 0), (1, 0), (0, 1)]:  # engine tiles 0, 1 and 3
            for plane in (0, 10):
                want = reference[plane, 256 * row : 256 * (row + 1), 256 * col : 256 * (col + 1)]
                assert np.array_equal(get_plane(c, plane, col, row, level), want)
        assert server.queue.wait_idle(10)
        stats = c.get("/stats").json()
        assert stats["engine_tiles_computed"] == 0 and stats["stage_tiles_read"] == 4

        want = reference[4, 512:600, 512:680]  # engine tile 8 (batch 4): computed, and staged for mfpi-run
        assert np.array_equal(get_plane(c, 4, 2, 2, level), want)
        assert c.get("/stats").json()["engine_tiles_computed"] == 1
    finally:
        server.close()
    assert state.done_batches() == {0, 1, 4}

    summary = run_slide(slide_path, staged_output(stage), backend, RunOptions(progress=False, resume=True))
    assert summary.tiles_computed == N_TILES - 5
    level0 = np.moveaxis(zarr_stack.open_level(staged_output(stage), 0)[:], 0, -1)  # (Z, H, W, C)
    assert np.array_equal(level0, reference)


def test_a_partial_run_another_process_writes_is_only_read(tmp_path: Path, slide_path: Path, backend) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    holder = subprocess.Popen(  # another process holds mfpi-run's lock of that output, as a running mfpi-run does
        [
            sys.executable,
            "-c",
            "import sys\nfrom mfpi_deploy.run.lock import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()",
            str(staged_output(stage)),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        server = make_server([slide_path], backend, stage=stage)
        try:
            c = client(server)
            get_plane(c, 0, 0, 0, server.slides["cells"].geometry.max_level)
            assert server.queue.wait_idle(10)
            assert c.get("/stats").json()["engine_tiles_computed"] == 2  # computed, in memory only
        finally:
            server.close()
        assert not partial_dir(staged_output(stage)).exists()  # nothing written while it is held
    finally:
        holder.stdin.close()
        holder.wait(30)
