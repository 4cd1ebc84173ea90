"""Backend.run_many: the one submit/collect pipeline every backend uses, against a recording stand-in."""

from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.engine.spec import EngineSpec


class Recording(Backend):
    """Planes = the tiles' first value; submit/collect logged; `depth` batches may be in flight."""

    kind = BackendKind.TORCH

    def __init__(self, depth: int) -> None:
        self.depth, self.events, self.busy, self.most = depth, [], set(), 0

    def in_flight(self) -> int:
        return self.depth

    def run(self, tiles, dpm=None):
        return self.collect(self.submit(tiles, dpm))

    def submit(self, tiles, dpm=None):
        ticket = int(tiles[0, 0, 0, 0])
        assert len(self.busy) < self.depth, "submitted past in_flight()"
        self.busy.add(ticket)
        self.most = max(self.most, len(self.busy))
        self.events.append(f"s{ticket}")
        return ticket

    def collect(self, ticket):
        self.busy.remove(ticket)
        self.events.append(f"c{ticket}")
        return np.full((1, 1, 2, 2, 1), ticket, np.uint8)


def batches(n: int):
    return [np.full((1, 1, 1, 1), i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_run_many_keeps_order_and_at_most_in_flight_batches(depth):
    backend = Recording(depth)
    outs = [int(o[0, 0, 0, 0, 0]) for o in backend.run_many(batches(5))]
    assert outs == [0, 1, 2, 3, 4]
    assert backend.most == min(depth, 5) and not backend.busy


def test_a_synchronous_engine_hands_each_output_over_before_the_next_batch_is_asked_for():
    backend = Recording(1)
    asked: list[int] = []

    def source():
        for b in batches(3):
            asked.append(int(b[0, 0, 0, 0]))
            yield b

    stream = backend.run_many(source())
    next(stream)
    assert asked == [0]  # batch 1 is not read while batch 0's output waits for its caller
    assert list(stream) and asked == [0, 1, 2]


def test_batches_in_flight_when_the_caller_stops_are_collected():
    backend = Recording(3)
    stream = backend.run_many(batches(6))
    assert int(next(stream)[0, 0, 0, 0, 0]) == 0
    assert backend.busy == {1, 2}
    stream.close()
    assert not backend.busy and backend.events[-2:] == ["c1", "c2"]


def test_an_error_in_the_source_frees_what_was_submitted():
    backend = Recording(2)

    def source():
        yield from batches(2)
        raise OSError("slide unreadable")

    with pytest.raises(OSError, match="unreadable"):
        list(backend.run_many(source()))
    assert not backend.busy


def test_the_default_submit_computes_and_collect_hands_it_over():
    class Plain(Backend):
        kind = BackendKind.ORT_CPU
        spec = EngineSpec.__new__(EngineSpec)

        def run(self, tiles, dpm=None):
            return tiles[:, None] + (0 if dpm is None else 1)

    plain = Plain()
    tiles = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)
    assert plain.in_flight() == 1
    assert np.array_equal(plain.collect(plain.submit(tiles)), tiles[:, None])
    outs = list(plain.run_many([tiles, (tiles, np.ones(1, np.float32))]))
    assert np.array_equal(outs[0], tiles[:, None]) and np.array_equal(outs[1], tiles[:, None] + 1)
