"""The engine-tile cache and compute queue: every engine tile is computed once, however many
DZI tiles and planes ask for it, and kept (all its planes) in an LRU bounded in bytes.

`ByteLRU` holds finished values (numpy arrays, sized by `nbytes`). `ComputeQueue` runs one
worker thread: a request for a cached key is a hit; for a key already queued or being computed
it joins that computation (coalescing); otherwise it queues a job. The worker takes the newest
job first (what the viewer shows now) with other queued jobs of the same group (one slide) up
to a batch, and drops jobs nobody waits for any more (tiles scrolled off screen). The queue is
bounded: past `max_pending` queued jobs a new request is refused with `Busy`, so a flood of
requests costs neither unbounded memory nor unbounded work. An optional `lookup` (a disk stage)
is asked first on the worker: what it has is read, counted as `stage_tiles_read`, not computed.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from mfpi_deploy.errors import MfpiError


class Busy(MfpiError):
    """Too many engine tiles are queued, or the server is stopping: the request is refused (HTTP 503)."""


class ByteLRU:
    """A thread-safe LRU of numpy arrays holding at most `limit_bytes` (one value larger than
    the limit is not kept)."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 0:
            raise MfpiError(f"cache size must be zero or more bytes, got {limit_bytes}")
        self.limit = limit_bytes
        self.bytes = 0
        self._items: collections.OrderedDict[Hashable, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, key: Hashable, value: np.ndarray) -> None:
        size = int(value.nbytes)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= int(old.nbytes)
            if size > self.limit:
                return
            self._items[key] = value
            self.bytes += size
            while self.bytes > self.limit:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= int(dropped.nbytes)
                self.evictions += 1


@dataclass
class _Job:
    key: tuple[Hashable, Hashable]  # (group, item): a job's group picks its compute function
    future: Future = field(default_factory=Future)
    waiters: int = 1


Compute = Callable[[Hashable, Sequence[Hashable]], Iterable[tuple[Hashable, np.ndarray]]]
Lookup = Callable[[Hashable, Sequence[Hashable]], dict[Hashable, np.ndarray]]


@dataclass
class QueueStats:
    engine_tiles_computed: int = 0
    engine_tiles_recomputed: int = 0  # of those, computed again after the cache had let them go
    cache_hits: int = 0
    coalesced: int = 0  # requests that joined a queued or running computation
    dropped: int = 0  # queued jobs nobody waited for any more, never computed
    busy: int = 0  # requests refused because the queue was full
    failed: int = 0
    stage_tiles_read: int = 0  # values read from the disk stage instead of computed
    compute_seconds: float = 0.0  # wall time the worker spent computing (engine, reading, cropping)

    def as_dict(self) -> dict[str, float]:
        return dict(vars(self))


class ComputeQueue:
    """Computes values by key on one worker thread, newest request first; see the module docstring.

    `compute(group, items)` yields (item, value) for every item, and may yield more (items
    computed in the same batch are cached too); keys are (group, item) pairs, e.g. (slide
    name, engine tile index).
    """

    def __init__(
        self,
        compute: Compute,
        cache: ByteLRU,
        *,
        max_pending: int = 256,
        max_batch: int = 4,
        lookup: Lookup | None = None,
    ) -> None:
        if max_pending < 1 or max_batch < 1:
            raise MfpiError(f"queue bound and batch must be at least 1, got {max_pending} and {max_batch}")
        self.compute, self.cache, self.lookup = compute, cache, lookup
        self.max_pending, self.max_batch = max_pending, max_batch
        self.stats = QueueStats()
        self._ever_computed: set[Hashable] = set()  # keys of every computed value (a slide's engine tiles: small)
        self._pending: collections.OrderedDict[tuple, _Job] = collections.OrderedDict()  # newest last
        self._running: dict[tuple, _Job] = {}
        self._taken = self._done = 0  # batches the worker took and finished (equal: it is idle)
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="mfpi-serve-compute", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being computed (batch-mates included), so that stats
        read next are settled; False if `timeout` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and self._taken == self._done, timeout)

    def request(self, key: tuple[Hashable, Hashable]) -> Future:
        """A future of the value of `key`: done at once on a cache hit, else joined or queued.
        Raises Busy when the queue is full. Call `release` if the result is no longer wanted."""
        value = self.cache.get(key)
        with self._cond:
            if value is not None:
                self.stats.cache_hits += 1
                done: Future = Future()
                done.set_result(value)
                return done
            job = self._pending.get(key) or self._running.get(key)
            if job is not None:
                job.waiters += 1
                self.stats.coalesced += 1
                if key in self._pending:
                    self._pending.move_to_end(key)  # asked again: it is on screen now
                return job.future
            if self._closed:
                raise Busy("the server is stopping")
            value = self.cache.get(key)  # finished between the first look and the lock
            if value is not None:
                self.stats.cache_hits += 1
                done = Future()
                done.set_result(value)
                return done
            if len(self._pending) >= self.max_pending:
                self.stats.busy += 1
                raise Busy(f"busy: {len(self._pending)} engine tiles queued; retry shortly")
            job = _Job(key)
            self._pending[key] = job
            self._cond.notify()
            return job.future

    def release(self, key: tuple[Hashable, Hashable], future: Future) -> None:
        """One waiter of `key` gave up (its client went away); a queued job nobody waits for is dropped."""
        with self._cond:
            job = self._pending.get(key)
            if job is None or job.future is not future:
                return
            job.waiters -= 1
            if job.waiters <= 0:
                del self._pending[key]
                self.stats.dropped += 1
                job.future.cancel()

    def get(self, key: tuple[Hashable, Hashable], timeout: float | None = None) -> np.ndarray:
        """The value of `key`, blocking (for callers on threads)."""
        return self.request(key).result(timeout)

    def stop(self) -> None:
        """Take no more requests and drop every queued job (their waiters see them cancelled);
        the batch being computed still finishes. Returns at once."""
        with self._cond:
            self._closed = True
            for job in self._pending.values():
                job.future.cancel()
            self._pending.clear()
            self._cond.notify_all()

    def close(self) -> None:
        """`stop`, then wait for the worker to finish its batch."""
        self.stop()
        self._thread.join(timeout=30)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            newest_key = next(reversed(self._pending))
            group = newest_key[0]
            batch = [self._pending.pop(newest_key)]
            for key in reversed(list(self._pending)):
                if len(batch) >= self.max_batch:
                    break
                if key[0] == group:
                    batch.append(self._pending.pop(key))
            for job in batch:
                self._running[job.key] = job
            self._taken += 1
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._done += 1
                    self._cond.notify_all()

    def _run(self, batch: list[_Job]) -> None:
        """Compute one batch (with its batch-mates) into the cache and answer its waiters."""
        group = batch[0].key[0]
        by_item = {job.key[1]: job for job in batch}
        try:
            if self.lookup is not None:
                for item, value in self.lookup(group, list(by_item)).items():
                    self._finish(group, item, value, by_item, computed=False)
            if by_item:
                started = time.perf_counter()
                try:
                    for item, value in self.compute(group, list(by_item)):
                        self._finish(group, item, value, by_item, computed=True)
                finally:
                    with self._cond:
                        self.stats.compute_seconds += time.perf_counter() - started
            if by_item:
                raise RuntimeError(f"compute gave no value for {sorted(map(str, by_item))}")
        except BaseException as exc:  # handed to every waiter of the batch
            with self._cond:
                self.stats.failed += len(by_item)
                for job in by_item.values():
                    self._running.pop(job.key, None)
            for job in by_item.values():
                if not job.future.done():
                    job.future.set_exception(exc)

    def _finish(self, group: Hashable, item: Hashable, value: np.ndarray, by_item: dict, *, computed: bool) -> None:
        key = (group, item)
        self.cache.put(key, value)
        with self._cond:
            if computed:
                self.stats.engine_tiles_computed += 1
                self.stats.engine_tiles_recomputed += key in self._ever_computed
                self._ever_computed.add(key)
            else:
                self.stats.stage_tiles_read += 1
            # made with its batch-mates though not asked for: a queued job for it is done too
            job = by_item.pop(item, None) or self._pending.pop(key, None)
            self._running.pop(key, None)
        if job is not None and not job.future.done():
            job.future.set_result(value)
