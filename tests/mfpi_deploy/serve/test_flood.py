"""1,000 concurrent tile requests against a bounded queue: every answer is a tile or a one-line
503, the server keeps answering /stats meanwhile, no engine tile is computed twice, and memory
stays within the cache bound (plus the interpreter's working set)."""

from __future__ import annotations

import asyncio
import random
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from mfpi_deploy.serve.app import create_app
from tests.mfpi_deploy.run.helpers import textured, write_tiff
from tests.mfpi_deploy.serve.conftest import BASE_URL, make_server

REQUESTS = 1000
SLACK_BYTES = 300 * 1024 * 1024  # working set beyond the cache: decoded windows, encoders, 1,000 request objects


@pytest.fixture
def big_slide(tmp_path: Path) -> Path:
    return write_tiff(tmp_path / "flood.tif", textured(400, 400, seed=3))


def test_a_thousand_concurrent_requests_stay_bounded(big_slide: Path, backend) -> None:
    cache_mb = 64  # holds every engine tile of the slide (4 x 8.6 MB): none is evicted, none computed twice
    server = make_server([big_slide], backend, max_pending=1, cache_mb=cache_mb)
    g = server.slides["flood"].geometry
    rows, cols = g.grid(g.max_level)
    tiles = [(p, c, r) for p in range(11) for r in range(rows) for c in range(cols)]
    paths = [f"/slides/flood/{p}_files/{g.max_level}/{c}_{r}.png" for p, c, r in tiles]
    paths = (paths * (REQUESTS // len(paths) + 1))[:REQUESTS]
    random.Random(0).shuffle(paths)
    rss_before = psutil.Process().memory_info().rss

    async def flood() -> tuple[list[httpx.Response], list[float]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transport = httpx.ASGITransport(app=create_app(server))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=120) as client:
            stats_seconds: list[float] = []
            done = asyncio.Event()

            async def watch() -> None:
                while not done.is_set():
                    t = time.perf_counter()
                    assert (await client.get("/stats")).status_code == 200
                    stats_seconds.append(time.perf_counter() - t)
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            responses = await asyncio.gather(*(client.get(p) for p in paths))
            done.set()
            await watcher
            return list(responses), stats_seconds

    try:
        responses, stats_seconds = asyncio.run(flood())
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503}, sorted(set(codes))
        assert codes.count(200) > 0 and codes.count(503) > 0  # the bound was reached and refused the excess
        for r in responses:
            if r.status_code == 503:
                assert r.text.startswith("error: busy:") and r.text.count("\n") == 1
        assert stats_seconds and max(stats_seconds) < 2.0  # the server kept answering while the queue was full
        stats = server.stats()
        n_engine = server.slides["flood"].live.plan.n_tiles
        assert stats["engine_tiles_computed"] <= n_engine  # never computed twice (the cache holds them all)
        assert stats["cache_bytes"] <= cache_mb * 1024 * 1024
        assert psutil.Process().memory_info().rss - rss_before < cache_mb * 1024 * 1024 + SLACK_BYTES
        # afterwards every tile is there, one at a time
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient

            c = TestClient(create_app(server), base_url=BASE_URL)
        for p, col, row in tiles[: rows * cols]:
            r = c.get(f"/slides/flood/{p}_files/{g.max_level}/{col}_{row}.png")
            assert r.status_code == 200 and np.asarray(r.content[:4]).size
        assert server.queue.wait_idle(10)
        assert server.stats()["engine_tiles_computed"] == n_engine
    finally:
        server.close()
