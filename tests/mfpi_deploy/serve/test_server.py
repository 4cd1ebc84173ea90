"""The server's bridge between the engine thread and the event loop: a result handed to a loop
that has closed, and a dropped tile, whether or not a request still waits for it."""

from __future__ import annotations

import asyncio
import gc
import logging
from concurrent.futures import Future

import numpy as np
import pytest

from mfpi_deploy.serve.cache import Busy
from mfpi_deploy.serve.server import _awaitable


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
