"""Summary statistics of timed runs: median and percentiles, and the ratio of paired runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Median, 10th and 90th percentile (linear interpolation, numpy's default), mean, min, max."""

    n: int
    median: float
    p10: float
    p90: float
    mean: float
    min: float
    max: float

    def scaled(self, factor: float) -> Summary:
        """The same summary with every value multiplied by a positive `factor` (e.g. s -> ms)."""
        return Summary(self.n, self.median * factor, self.p10 * factor, self.p90 * factor,
                       self.mean * factor, self.min * factor, self.max * factor)

    def to_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "median": self.median, "p10": self.p10, "p90": self.p90,
                "mean": self.mean, "min": self.min, "max": self.max}


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples`, linearly interpolated between order statistics."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no samples")
    return float(np.percentile(values, q))


def summarize(samples: Sequence[float]) -> Summary:
    """Summarise timings (or any positive samples); at least one sample."""
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("summarize needs a non-empty 1-D sequence of samples")
    p10, p50, p90 = np.percentile(values, [10.0, 50.0, 90.0])
    return Summary(int(values.size), float(p50), float(p10), float(p90),
                   float(values.mean()), float(values.min()), float(values.max()))


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios a_i / b_i of runs made in the same round (interleaved measurement).

    A slow spell on a shared machine hits both runs of a round, so their ratio stays stable
    even when the absolute times do not.
    """
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError("paired ratios need two equally long, non-empty sequences")
    if any(d <= 0 for d in denominators):
        raise ValueError("denominators must be positive")
    return [float(a) / float(b) for a, b in zip(numerators, denominators)]
