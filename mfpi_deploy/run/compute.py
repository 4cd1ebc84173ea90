"""Compute: read -> engine -> encode/write for the batches a process runs (the tile loop of
`infer.stream_tiles` feeding the pyramid builder), each finished batch journaled."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.infer.stream import stream_tiles
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.plan import PlannedRun
from mfpi_deploy.run.state import Journal
from mfpi_deploy.slide import TileSource
from mfpi_deploy.tiling import Tile, TilePlan


def writer_threads(cores: int, engine_cores: int) -> int:
    """Encoder threads of a run: the cores the engine leaves, at least one. Codec calls release
    the GIL, so more threads than that only take cores from a CPU engine (measured: an OpenVINO
    INT8 run on 2 cores was faster with one writer than with two)."""
    return max(1, cores - engine_cores)


class _Progress:
    """Journals finished batches (the sinks synced their files), moves the progress bar and calls
    `on_tiles`; thread-safe. `check` runs after each batch and may raise to stop the loop."""

    def __init__(
        self,
        journal: Journal,
        plan: TilePlan,
        options: RunOptions,
        done_tiles: int,
        todo_tiles: int,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.journal = journal
        self.sync_seconds = options.sync_seconds
        self.on_tiles = options.on_tiles
        self.todo_tiles = todo_tiles
        self.check = check
        self.lock = threading.Lock()
        self.pending: list[int] = []
        self.last_sync = time.monotonic()
        self.started = time.perf_counter()
        self.tiles = 0
        self.mp_per_tile = plan.core * plan.core / 1e6
        self.bar = tqdm(
            total=plan.n_tiles,
            initial=done_tiles,
            unit="tile",
            disable=not options.progress,
            dynamic_ncols=True,
            smoothing=0.1,
            desc="tiles",
        )
        if self.on_tiles is not None:
            self.on_tiles(0, todo_tiles)

    def batch_done(self, index: int, tiles: int) -> None:
        with self.lock:
            self.pending.append(index)
            if time.monotonic() - self.last_sync >= self.sync_seconds:
                self._flush()
            self.tiles += tiles
            self.bar.update(tiles)
            rate = self.tiles * self.mp_per_tile / (time.perf_counter() - self.started)
            self.bar.set_postfix_str(f"{rate:.3f} MP/s", refresh=False)
            if self.on_tiles is not None:
                self.on_tiles(tiles, self.todo_tiles)
        if self.check is not None:
            self.check()

    def _flush(self) -> None:
        # The sinks fsync what they write before a batch is reported, so the journal may name
        # it at once (power-loss safe); the journal itself is fsynced once per interval.
        if self.pending:
            self.journal.record(self.pending)
            self.pending = []
        self.last_sync = time.monotonic()

    def close(self) -> None:
        """Journal what was written (also after Ctrl-C or an error: it is kept for --resume)."""
        with self.lock:
            try:
                self._flush()
            finally:
                self.bar.close()


def stream_batches(
    source: TileSource,
    run: PlannedRun,
    todo: Sequence[int],
    backend: Backend,
    journal: Journal,
    options: RunOptions,
    done_tiles: int = 0,
    check: Callable[[], None] | None = None,
    build_upper: bool = True,
    on_tile: Callable[[Tile, np.ndarray], None] | None = None,
) -> None:
    """Run batches `todo` of the planned slide into its partial stack, journaling each written batch.

    Every finished engine tile is encoded at once, with its pyramid levels; with `build_upper`
    the levels above it are built as soon as their tiles are complete (a distributed task leaves
    them to the client's finish, which builds whatever is missing). `on_tile(tile, planes)` sees
    every core once it is written (mfpi-serve keeps what it stages)."""
    groups = run.groups
    builder = run.pyramid()
    progress = _Progress(journal, run.plan, options, done_tiles, sum(len(groups[b]) for b in todo), check)

    def write(t: Tile, planes: np.ndarray) -> None:
        builder.add_engine_tile(t.row, t.col, planes, build=build_upper)
        if on_tile is not None:
            on_tile(t, planes)

    try:
        stream_tiles(
            source,
            run.plan,
            groups,
            todo,
            backend,
            write,
            on_batch=progress.batch_done,
            queue_batches=options.queue_batches,
            writers=options.writers or writer_threads(os.cpu_count() or 1, backend.host_cores()),
        )
    finally:
        progress.close()
