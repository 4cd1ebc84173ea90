"""Wall-clock timing of a call, with an optional device synchronisation before reading the clock."""
from __future__ import annotations

import time
from typing import Callable


def timed(fn: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
    """Seconds one call of `fn` takes, synchronising the device (if given) before each clock read.

    Backends return host arrays, so their GPU work is complete when `run` returns; `sync`
    is for raw device work such as the matrix-product reference.
    """
    if sync is not None:
        sync()
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start


def repeat_timed(fn: Callable[[], object], runs: int, warmup: int,
                 sync: Callable[[], None] | None = None) -> list[float]:
    """`warmup` untimed calls, then the seconds of each of `runs` timed calls."""
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    for _ in range(warmup):
        fn()
    return [timed(fn, sync) for _ in range(runs)]
