"""The server's helpers that stand between the event loop, the engine thread and the views:
a result handed to a loop that has closed, and the input shown where the planes are not computed."""

from __future__ import annotations

import asyncio
import gc
import logging
from concurrent.futures import Future

import numpy as np
import pytest

from mfpi_deploy.serve.cache import Busy
from mfpi_deploy.serve.server import _awaitable, _input_at
from mfpi_deploy.tiling import Box


def test_an_engine_result_after_the_loop_closed_is_let_go(caplog: pytest.LogCaptureFixture) -> None:
    """The server stopped while the engine finished a tile: its callback finds the loop closed."""
    caplog.set_level(logging.ERROR, logger="concurrent.futures")
    loop = asyncio.new_event_loop()
    done: Future = Future()
    _awaitable(done, loop)
    loop.close()
    done.set_result(np.zeros(3))  # the engine thread's result, after the stop
    # it was "exception calling callback ... RuntimeError: Event loop is closed", a traceback on stderr
    assert not [r for r in caplog.records if r.name == "concurrent.futures"]


def test_a_dropped_tile_is_a_busy_answer() -> None:
    async def main() -> None:
        queued: Future = Future()
        waiting = _awaitable(queued, asyncio.get_running_loop())
        queued.cancel()  # dropped from the queue (the server is stopping)
        with pytest.raises(Busy, match="dropped"):
            await waiting

    asyncio.run(main())


def test_a_dropped_tile_nobody_waits_for_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Its request went away (or was cancelled by a forced stop): no "exception was never retrieved"."""
    caplog.set_level(logging.ERROR, logger="asyncio")

    async def main() -> None:
        queued: Future = Future()
        _awaitable(queued, asyncio.get_running_loop())  # the asyncio future is dropped unread
        queued.cancel()
        await asyncio.sleep(0.01)  # its callback runs
        gc.collect()

    asyncio.run(main())
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


class _Input:
    """An input slide of 4x6 pixels whose values name their place (row * 10 + col)."""

    pixels = (np.arange(4)[:, None] * 10 + np.arange(6)[None, :]).astype(np.uint8)[..., None]

    def region(self, downsample: int, box: Box) -> np.ndarray:
        assert downsample == 1
        return self.pixels[box.y0 : box.y1, box.x0 : box.x1]


@pytest.mark.parametrize("box", [Box(0, 0, 8, 12), Box(1, 3, 6, 10), Box(3, 5, 4, 6)])
def test_the_input_is_repeated_up_to_a_level_finer_than_its_pixels(box: Box) -> None:
    """At full resolution of a 2x engine, one input pixel stands for 2x2 output pixels."""
    expected = _Input.pixels.repeat(2, axis=0).repeat(2, axis=1)[box.y0 : box.y1, box.x0 : box.x1]
    assert np.array_equal(_input_at(_Input(), 1, 2, box), expected)


def test_the_input_is_read_at_its_own_level_where_it_is_as_coarse() -> None:
    seen = []

    class View:
        def region(self, downsample: int, box: Box) -> np.ndarray:
            seen.append((downsample, box))
            return np.zeros((box.height, box.width, 1), np.uint8)

    _input_at(View(), 8, 2, Box(0, 0, 5, 5))
    assert seen == [(4, Box(0, 0, 5, 5))]
