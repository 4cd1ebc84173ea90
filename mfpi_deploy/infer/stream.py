"""The tile loop: a reader thread cuts input windows, the calling thread runs the engine, writer
threads crop each tile's core and hand it to the merger. Bounded queues join the stages, so
memory is bounded by the queue sizes, not by the image.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.tiling import Box, Tile, TilePlan

_DONE = object()


class WindowReader(Protocol):
    def read(self, window: Box) -> np.ndarray:
        """uint8 (h, w, channels) of a window that may reach outside the image (reflected)."""


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop.is_set():
                return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _DONE


def stream_tiles(
    source: WindowReader,
    plan: TilePlan,
    groups: Sequence[range],
    todo: Sequence[int],
    backend: Backend,
    write: Callable[[Tile, np.ndarray], None],
    *,
    on_batch: Callable[[int, int], None] | None = None,
    queue_batches: int = 2,
    writers: int = 1,
) -> None:
    """Run batches `todo` (indices into `groups`, the plan's fixed tile groups) through `backend`.

    `write(tile, planes)` receives the core of each tile's output, uint8 (Z, sh, sw, C) for the
    output box `tile.core.scaled(scale)`; `on_batch(index, tiles)` is called once a batch's
    cores are all written. Both run in writer threads (`writers` of them). The first error of
    any stage stops the others and is raised here; Ctrl-C stops all stages and propagates.
    """
    scale = backend.spec.scale
    in_q: queue.Queue = queue.Queue(maxsize=queue_batches)
    out_q: queue.Queue = queue.Queue(maxsize=queue_batches)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for b in todo:
                tiles = [plan.tile_at(i) for i in groups[b]]
                data = np.stack([source.read(t.window) for t in tiles])
                if not _put(in_q, (b, tiles, data), stop):
                    return
            _put(in_q, _DONE, stop)
        except BaseException as exc:  # reported by the calling thread
            errors.append(exc)
            stop.set()

    def writer() -> None:
        try:
            while True:
                item = _get(out_q, stop)
                if item is _DONE:
                    _put(out_q, _DONE, stop)  # let the other writers see the end too
                    return
                b, tiles, out = item
                for t, planes in zip(tiles, out):
                    ys, xs = t.crop(plan.halo, scale)
                    write(t, planes[:, ys, xs, :])
                if on_batch is not None:
                    on_batch(b, len(tiles))
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=reader, name="mfpi-read", daemon=True)]
    threads += [threading.Thread(target=writer, name=f"mfpi-write-{i}", daemon=True) for i in range(max(1, writers))]
    for t in threads:
        t.start()
    try:
        in_flight: collections.deque = collections.deque()

        def engine_inputs() -> Iterator[np.ndarray]:
            while True:
                item = _get(in_q, stop)
                if item is _DONE:
                    return
                b, tiles, data = item
                in_flight.append((b, tiles))
                yield data

        # run_many lets GPU backends keep batches in flight (copies overlap compute).
        for out in backend.run_many(engine_inputs()):
            b, tiles = in_flight.popleft()
            if not _put(out_q, (b, tiles, out), stop):
                break
        _put(out_q, _DONE, stop)
    except BaseException:
        stop.set()
        raise
    finally:
        if errors:
            stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
