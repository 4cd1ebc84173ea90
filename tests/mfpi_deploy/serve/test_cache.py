"""The engine-tile cache and queue with a fake engine that counts its calls: bounded bytes,
LRU order, one computation per key however many ask at once, newest first, dropped when
abandoned, refused past the bound."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mfpi_deploy.serve.cache import Busy, ByteLRU, ComputeQueue


def block(mb: float) -> np.ndarray:
    return np.zeros(int(mb * 1024 * 1024), np.uint8)


def test_lru_keeps_at_most_its_bytes_dropping_the_least_recently_used() -> None:
    lru = ByteLRU(3 * 1024 * 1024)
    for k in "abc":
        lru.put(k, block(1))
    assert lru.bytes == 3 * 1024 * 1024 and len(lru) == 3
    assert lru.get("a") is not None  # a is now the most recent
    lru.put("d", block(1))
    assert "b" not in lru and all(k in lru for k in "acd")
    assert lru.bytes <= lru.limit and lru.evictions == 1
    lru.put("big", block(4))  # larger than the whole cache: not kept, nothing else lost
    assert "big" not in lru and len(lru) == 3
    lru.put("a", block(2))  # replacing a value counts its new size
    assert lru.bytes <= lru.limit and "a" in lru


class FakeEngine:
    """Counts computations per key; blocks until `gate` is set, so tests can pile requests up."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, group, items):
        self.started.set()
        self.gate.wait(10)
        with self.lock:
            self.calls.append((group, list(items)))
        for i in items:
            yield i, np.full((11, 4, 4, 3), i % 256, np.uint8)

    def computed(self) -> list[tuple[str, int]]:
        return [(g, i) for g, items in self.calls for i in items]


def test_concurrent_requests_for_one_engine_tile_compute_it_once() -> None:
    engine = FakeEngine()
    queue = ComputeQueue(engine, ByteLRU(1 << 30))
    try:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(queue.get, ("s", 7), 10) for _ in range(64)]
            time.sleep(0.2)
            assert queue.stats.compute_seconds == 0.0  # counted when a computation ends
            engine.gate.set()
            values = [f.result() for f in futures]
        assert engine.computed() == [("s", 7)]
        assert queue.stats.compute_seconds >= 0.2  # the worker waited at the gate inside compute
        assert all(v is values[0] for v in values)
        assert queue.stats.engine_tiles_computed == 1
        assert queue.stats.coalesced + queue.stats.cache_hits == 63
        before = queue.stats.cache_hits
        assert queue.get(("s", 7)) is values[0]  # later: a hit, no computation
        assert queue.stats.cache_hits == before + 1 and engine.computed() == [("s", 7)]
    finally:
        queue.close()


def test_an_engine_tile_computed_again_after_eviction_is_counted() -> None:
    engine = FakeEngine()
    engine.gate.set()
    value_bytes = 11 * 4 * 4 * 3
    queue = ComputeQueue(engine, ByteLRU(value_bytes))  # room for one engine tile
    try:
        queue.get(("s", 1))
        queue.get(("s", 1))  # kept: a hit
        assert queue.stats.engine_tiles_recomputed == 0
        queue.get(("s", 2))  # evicts tile 1
        queue.get(("s", 1))  # computed again
        assert engine.computed() == [("s", 1), ("s", 2), ("s", 1)]
        assert queue.stats.engine_tiles_computed == 3 and queue.stats.engine_tiles_recomputed == 1
    finally:
        queue.close()


def test_newest_first_batched_by_slide_and_abandoned_jobs_dropped() -> None:
    engine = FakeEngine()
    queue = ComputeQueue(engine, ByteLRU(1 << 30), max_batch=2)
    try:
        first = queue.request(("a", 0))
        assert engine.started.wait(5)  # the worker holds ("a", 0); the rest queue up behind it
        futures = {key: queue.request(key) for key in [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)]}
        queue.release(("a", 2), futures[("a", 2)])  # scrolled off screen before it started
        assert queue.pending == 4 and queue.stats.dropped == 1 and futures[("a", 2)].cancelled()
        engine.gate.set()
        for key, fut in futures.items():
            if key != ("a", 2):
                fut.result(5)
        first.result(5)
        # newest first, with the other queued tiles of the same slide up to the batch
        assert engine.calls == [("a", [0]), ("b", [2, 1]), ("a", [3, 1])]
        assert ("a", 2) not in engine.computed()
    finally:
        queue.close()


def test_a_full_queue_refuses_instead_of_growing() -> None:
    engine = FakeEngine()
    queue = ComputeQueue(engine, ByteLRU(1 << 30), max_pending=3)
    try:
        queue.request(("s", 0))
        assert engine.started.wait(5)
        for i in range(1, 4):
            queue.request(("s", i))
        with pytest.raises(Busy, match="busy: 3 engine tiles queued"):
            queue.request(("s", 99))
        queue.request(("s", 2))  # joining a queued tile is always allowed
        assert queue.stats.busy == 1 and queue.pending == 3
    finally:
        engine.gate.set()
        queue.close()


def test_stop_drops_what_is_queued_at_once_and_refuses_new_requests() -> None:
    """A stopping server does not wait for the engine to compute its whole queue: queued jobs are
    cancelled at once, the batch being computed still finishes, and new requests are refused."""
    engine = FakeEngine()
    queue = ComputeQueue(engine, ByteLRU(1 << 30), max_batch=1)
    try:
        running = queue.request(("s", 0))
        assert engine.started.wait(5)
        queued = [queue.request(("s", i)) for i in range(1, 5)]
        queue.stop()
        assert all(f.cancelled() for f in queued) and queue.pending == 0
        with pytest.raises(Busy, match="stopping"):
            queue.request(("s", 9))
        engine.gate.set()
        assert running.result(5).shape == (11, 4, 4, 3)
        assert engine.computed() == [("s", 0)]
    finally:
        engine.gate.set()
        queue.close()


def test_an_engine_error_reaches_every_waiter_and_is_not_cached() -> None:
    def broken(group, items):
        raise RuntimeError("engine failed")
        yield  # pragma: no cover

    queue = ComputeQueue(broken, ByteLRU(1 << 30))
    try:
        with pytest.raises(RuntimeError, match="engine failed"):
            queue.get(("s", 1), 5)
        assert queue.stats.failed == 1 and ("s", 1) not in queue.cache
    finally:
        queue.close()


def test_wait_idle_returns_once_the_batch_and_its_mates_are_done() -> None:
    engine = FakeEngine()
    queue = ComputeQueue(engine, ByteLRU(1 << 30))
    try:
        future = queue.request(("s", 1))
        assert engine.started.wait(5)
        assert not queue.wait_idle(0.1)  # the engine holds the batch
        engine.gate.set()
        assert queue.wait_idle(5) and future.done() and queue.stats.engine_tiles_computed == 1
    finally:
        queue.close()
