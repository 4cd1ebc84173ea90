"""One way to time things that are compared: interleaved rounds, the order reversed every other round,
and ratios taken round by round with their spread.

Interleaving puts every contender under the same drift of load and clock; reversing the order cancels
the advantage of going first or last in a round; a ratio of two contenders' times in the same round
is steadier than a ratio of their medians, and its spread says how far to trust it. Used by mfpi-bench,
the auto probe and the benchmark scripts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["interleaved", "Ratio", "ratio"]


def interleaved(
    runners: Mapping[Hashable, Callable[[], object]],
    runs: int,
    warmup: int = 1,
    *,
    around: Callable[[Hashable | None], None] | None = None,
    after_round: Callable[[int, dict[Hashable, list[float]]], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[Hashable, list[float]]:
    """Seconds per call of each runner in `runs` timed rounds after `warmup` untimed ones; round r
    calls the runners in their order, or reversed when r is odd. `around(key)` is called before each
    call and `around(None)` after it (a memory sampler's phase); `after_round(r, seconds)` after each
    round, r counting the timed rounds from 0 (the warm-up rounds are -warmup..-1): progress, load."""
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    order = list(runners)
    seconds: dict[Hashable, list[float]] = {key: [] for key in order}
    for r in range(warmup + runs):
        for key in order if r % 2 == 0 else order[::-1]:
            if around is not None:
                around(key)
            start = clock()
            runners[key]()
            took = clock() - start
            if around is not None:
                around(None)
            if r >= warmup:
                seconds[key].append(took)
        if after_round is not None:
            after_round(r - warmup, seconds)
    return seconds


@dataclass(frozen=True)
class Ratio:
    """time(base) / time(other) per round: above 1, `other` is faster. Median and range over rounds."""

    median: float
    low: float
    high: float
    rounds: int

    def __str__(self) -> str:
        return f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f} over {self.rounds} rounds)"


def ratio(base: Sequence[float], other: Sequence[float]) -> Ratio:
    """Round-by-round ratio base/other of two runners' seconds from the same interleaved rounds."""
    if len(base) != len(other) or not base:
        raise ValueError("ratios need the same, non-zero number of rounds for both")
    per_round = [b / o for b, o in zip(base, other)]
    return Ratio(statistics.median(per_round), min(per_round), max(per_round), len(per_round))
