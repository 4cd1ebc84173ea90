"""The server's state: the opened slides, the engine, the engine-tile cache and compute queue,
and the three reads the routes make (a DZI tile, the sharpest plane of a region, the stats).

Blocking work (reading, assembling, encoding) runs on worker threads through a bounded limiter;
waiting for engine tiles is asynchronous, so a thousand waiting requests hold no thread, and a
request whose client has gone releases its engine tiles (queued ones nobody else wants are dropped).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.serve.cache import Busy, ByteLRU, ComputeQueue
from mfpi_deploy.serve.config import ServeConfig
from mfpi_deploy.serve.mapping import engine_tiles_over
from mfpi_deploy.serve.render import encode
from mfpi_deploy.serve.slides import ServedSlide, SlideSet, check_paths, open_input, open_live, open_stored
from mfpi_deploy.slide.focus import sharpest_plane
from mfpi_deploy.tiling import Box

SHARPEST_SIDE = 1024  # full-resolution pixels: the sharpest plane is measured on at most this block
WORK_THREADS = 4  # concurrent reads/encodes (the engine has its own thread)
POLL_SECONDS = 0.25  # how often a waiting request checks that its client is still there


class NotFound(MfpiError):
    """A slide, plane, level or tile that does not exist (HTTP 404)."""


class ClientGone(Exception):
    """The client went away while its tile waited for the engine."""


class SlideServer:
    """Slides by NAME, the engine (if any slide is live) and the cache; closes them all."""

    def __init__(self, config: ServeConfig, slides: SlideSet, backend: Backend | None, cache: ByteLRU) -> None:
        self.config, self.slide_set, self.backend, self.cache = config, slides, backend, cache
        self.slides = slides.slides
        self.queue = ComputeQueue(
            self._compute,
            self.cache,
            max_pending=config.max_pending,
            max_batch=config.engine_batch,
            lookup=self._staged,
        )
        self.limiter = anyio.CapacityLimiter(WORK_THREADS)
        self.tiles_served = 0
        self.stopping = False

    def _compute(self, name: Any, indices: Sequence[Any]) -> Iterable[tuple[Any, np.ndarray]]:
        live = self.slides[name].live
        assert live is not None
        return live.compute(list(indices))

    def _staged(self, name: Any, indices: Sequence[Any]) -> dict[Any, np.ndarray]:
        live = self.slides[name].live
        assert live is not None
        return live.staged(list(indices))

    def stop(self) -> None:
        """The server is stopping: queued engine tiles are dropped (their requests answer 503 at
        once instead of holding the shutdown until the engine has computed them all)."""
        self.stopping = True
        self.queue.stop()

    def close(self) -> None:
        self.stopping = True
        self.queue.close()
        self.slide_set.close()
        if self.backend is not None:
            self.backend.close()

    # -- lookups
    def slide(self, name: str) -> ServedSlide:
        slide = self.slides.get(name)
        if slide is None:
            raise NotFound(f"no slide named {name!r} is served")
        return slide

    def stats(self) -> dict[str, Any]:
        return {
            **self.queue.stats.as_dict(),
            "queued": self.queue.pending,
            "cache_bytes": self.cache.bytes,
            "cache_limit_bytes": self.cache.limit,
            "cache_entries": len(self.cache),
            "cache_evictions": self.cache.evictions,
            "tiles_served": self.tiles_served,
            "rss_bytes": _rss(),
        }

    # -- reads
    async def tile(
        self, name: str, plane: str, level: int, col: int, row: int, fmt: str, gone: Callable[[], Awaitable[bool]]
    ) -> bytes:
        """The encoded DZI tile (col, row) of `level` of `plane` ('input' or '0'..) of slide NAME."""
        slide = self.slide(name)
        if plane == "input":
            if slide.input is None or slide.input_geometry is None:
                raise NotFound(f"slide {name!r} is a finished output: it has no input view")
            geometry, view = slide.input_geometry, slide.input
            box = _tile_box(geometry, level, col, row)
            d = geometry.downsample(level)
            pixels = await self._run(view.region, d, box)
        else:
            z = int(plane)
            if not 0 <= z < slide.planes:
                raise NotFound(f"plane {z} does not exist (planes 0..{slide.planes - 1} and input)")
            box = _tile_box(slide.geometry, level, col, row)
            pixels = await self._plane_region(slide, slide.geometry.downsample(level), box, [z], gone)
            pixels = pixels[0]
        data = await self._run(encode, pixels, fmt, self.config.jpeg_quality)
        self.tiles_served += 1
        return data

    async def sharpest(self, name: str, box: Box, gone: Callable[[], Awaitable[bool]]) -> int:
        """The sharpest plane of `box` (full-resolution pixels; a centred block of at most
        SHARPEST_SIDE is measured), by the focus measure of `mfpi-run --plane sharpest`."""
        slide = self.slide(name)
        g = slide.geometry
        box = Box(max(0, box.y0), max(0, box.x0), min(g.height, box.y1), min(g.width, box.x1))
        if box.height <= 0 or box.width <= 0:
            raise MfpiError("the region lies outside the slide")
        cy, cx = (box.y0 + box.y1) // 2, (box.x0 + box.x1) // 2
        h, w = min(box.height, SHARPEST_SIDE), min(box.width, SHARPEST_SIDE)
        block = Box(cy - h // 2, cx - w // 2, cy - h // 2 + h, cx - w // 2 + w)
        planes = await self._plane_region(slide, 1, block, list(range(slide.planes)), gone, force=True)
        return await self._run(sharpest_plane, list(planes))

    async def _plane_region(
        self,
        slide: ServedSlide,
        downsample: int,
        box: Box,
        planes: list[int],
        gone: Callable[[], Awaitable[bool]],
        *,
        force: bool = False,
    ) -> np.ndarray:
        if slide.stored is not None:
            return await self._run(slide.stored.region, downsample, box, planes)
        live = slide.live
        assert live is not None
        if force:
            needed: list[int] | None = engine_tiles_over(live.plan, live.scale, box.scaled(downsample))
        else:
            needed = live.needs(downsample, box)
        if needed is None:  # a coarser level not computed (never full resolution): the input, same place and size
            assert slide.input is not None
            pixels = await self._run(slide.input.region, downsample // slide.scale, box)
            return np.repeat(pixels[None], len(planes), axis=0)
        cores = await self._engine_tiles(slide.name, needed, gone)
        return await self._run(live.region, downsample, box, planes, cores)

    async def _engine_tiles(
        self, name: str, indices: list[int], gone: Callable[[], Awaitable[bool]]
    ) -> dict[int, np.ndarray]:
        """Engine tiles by index, computed once (cache, coalescing); releases them if the client goes."""
        loop = asyncio.get_running_loop()
        taken: list[tuple[tuple[str, int], Future]] = []
        try:
            for i in indices:
                key = (name, i)
                taken.append((key, self.queue.request(key)))
            waiting = [_awaitable(f, loop) for _, f in taken]
            pending = set(waiting)
            while pending:
                _, pending = await asyncio.wait(pending, timeout=POLL_SECONDS)
                if pending and await gone():
                    raise ClientGone()
            results = [w.result() for w in waiting]
        except BaseException:
            for key, fut in taken:
                self.queue.release(key, fut)
            raise
        return dict(zip(indices, results))

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, limiter=self.limiter)


def _tile_box(geometry: Any, level: int, col: int, row: int) -> Box:
    try:
        geometry.check_level(level)
        return geometry.tile_box(level, col, row)
    except MfpiError as exc:
        raise NotFound(str(exc)) from None


def _awaitable(future: Future, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
    """An asyncio future following a concurrent one, without cancelling it when abandoned
    (other requests may wait for the same engine tile). A result that arrives after the loop
    has closed (the server stopped while the engine finished a tile) is let go."""
    out = loop.create_future()

    def copy(_: Future) -> None:
        if out.done():
            return
        if future.cancelled():
            out.set_exception(Busy("the engine tile was dropped from the queue (the server is stopping)"))
        elif future.exception() is not None:
            out.set_exception(future.exception())
        else:
            out.set_result(future.result())
        out.exception()  # marks an exception retrieved: a request that went away logs no "never retrieved"

    def post(f: Future) -> None:
        try:
            loop.call_soon_threadsafe(copy, f)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass

    future.add_done_callback(post)
    return out


def _rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process(os.getpid()).memory_info().rss)
    except Exception:
        return None


def open_server(
    paths: Sequence[Path],
    config: ServeConfig,
    open_engine: Callable[[], Backend],
    log: Callable[[str], None] = print,
) -> SlideServer:
    """Check and open every slide (unreadable ones refused before the engine is opened), then the
    engine if an input slide needs it, and plan each live slide as `mfpi-run` would."""
    found = check_paths(paths)
    cache = ByteLRU(config.cache_bytes)
    slides = SlideSet()
    backend: Backend | None = None
    try:
        inputs = []
        for name, path, output in found:
            if output:
                slides.add(open_stored(name, path, config))
            else:
                view = open_input(path, config.plane)
                slides.callback(view.close)
                inputs.append((name, path, view))
        if inputs:
            backend = open_engine()
            for name, path, view in inputs:
                slides.add(open_live(name, path, view, backend, config, slides, _cached_in(cache), log))
        server = SlideServer(config, slides, backend, cache)
    except BaseException:
        slides.close()
        if backend is not None:
            backend.close()
        raise
    return server


def _cached_in(cache: ByteLRU) -> Callable[[str, int], bool]:
    def cached(name: str, index: int) -> bool:
        return (name, index) in cache

    return cached
