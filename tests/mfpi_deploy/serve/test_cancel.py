"""A tile request whose client goes away while its engine tile waits in the queue: the queued
engine tile is dropped, never computed, and the request ends without an answer to nobody."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.serve.app import create_app
from tests.mfpi_deploy.serve.asgi import get_scope
from tests.mfpi_deploy.serve.conftest import make_server


class GatedBackend(Backend):
    """The tiny model, held at its first engine call until `gate` is set (a slow engine)."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.kind, self.spec, self.identity = inner, inner.kind, inner.spec, inner.identity
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        self.entered.set()
        self.gate.wait(30)
        return self.inner.run(tiles, dpm)


def asgi_get(app, path: str, *, disconnect: asyncio.Event) -> dict:
    """GET `path`; the client reports a disconnect once `disconnect` is set."""
    sent: list[dict] = []

    async def go() -> None:
        scope = get_scope(path)
        first = True

        async def receive() -> dict:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)

    return {"go": go, "sent": sent}


def test_a_request_whose_client_left_drops_its_queued_engine_tile(slide_path: Path, backend) -> None:
    gated = GatedBackend(backend)
    server = make_server([slide_path], gated, warm_up=False)  # its first call is the gated tile
    try:
        app = create_app(server)
        g = server.slides["cells"].geometry
        run = server.slides["cells"].live.run
        level = g.max_level
        last = g.grid(level)
        far = f"/slides/cells/0_files/{level}/{last[1] - 1}_{last[0] - 1}.png"  # the last engine tile's batch

        async def scenario() -> tuple[dict, dict]:
            stay, leave = asyncio.Event(), asyncio.Event()
            first = asgi_get(app, f"/slides/cells/0_files/{level}/0_0.png", disconnect=stay)
            gone = asgi_get(app, far, disconnect=leave)
            task1 = asyncio.create_task(first["go"]())
            while not gated.entered.is_set():  # the engine holds batch 0
                await asyncio.sleep(0.02)
            task2 = asyncio.create_task(gone["go"]())
            while server.queue.pending == 0:  # the far tile waits in the queue
                await asyncio.sleep(0.02)
            leave.set()  # its client goes away
            await task2
            gated.gate.set()
            await task1
            return first, gone

        first, gone = asyncio.run(scenario())
        assert first["sent"][0]["status"] == 200
        assert gone["sent"][0]["status"] == 499
        # the first request is answered as soon as its own tile is done, its batch-mates just after
        assert server.queue.wait_idle(10)
        stats = server.stats()
        assert stats["dropped"] == 1 and stats["queued"] == 0
        assert stats["engine_tiles_computed"] == len(run.groups[0])  # the far batch was never computed
        assert gated.calls == 1  # one engine call: batch 0
    finally:
        gated.gate.set()
        server.close()
