"""Interleaved timing of MFPINet and Deep-Z stacks on one backend.

Each round runs one MFPINet stack and one Deep-Z stack (11 passes), alternating which goes
first (ABBA), so drift and bursts of load from other processes hit both models alike and the
per-round ratio stays meaningful on a shared machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Hashable

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.bench.memory import PeakSampler
from mfpi_deploy.bench.timing import timed
from mfpi_deploy.bench.workload import BenchModel, Workload


def stack_runner(backend: Backend, workload: Workload, tiles: np.ndarray) -> Callable[[], None]:
    """A call that computes one whole output stack of `workload` on `backend`."""
    if workload.model is BenchModel.MFPINET:
        return lambda: backend.run(tiles)  # type: ignore[return-value]
    dpms = [np.full(workload.batch, v, dtype=np.float32) for v in workload.dpm_values()]

    def deepz_stack() -> None:
        # run_many: GPU backends keep several passes in flight, as a production stack would.
        for _ in backend.run_many([(tiles, dpm) for dpm in dpms]):
            pass

    return deepz_stack


def check_output(backend: Backend, workload: Workload, tiles: np.ndarray) -> None:
    """Run one pass and check the engine returns the shape the workload counts (a sanity check)."""
    dpm = np.full(workload.batch, workload.dpm_values()[0], np.float32) if workload.passes > 1 else None
    out = backend.run(tiles, dpm=dpm) if dpm is not None else backend.run(tiles)
    planes = workload.planes // workload.passes
    expected = (workload.batch, planes, workload.out_tile, workload.out_tile, workload.channels)
    if tuple(out.shape) != expected or out.dtype != np.uint8:
        raise RuntimeError(f"{backend.describe()} returned {out.dtype} {out.shape}, expected uint8 {expected}")


def _name(key: Hashable) -> str:
    return key.value if isinstance(key, Enum) else str(key)


def _label(key: Hashable) -> str:
    return getattr(key, "label", str(key))


@dataclass
class PairTimes:
    """Seconds per call of each runner, one entry per round (same round = same index)."""

    seconds: dict[Hashable, list[float]]
    host_peak_bytes: dict[Hashable, int]
    device_peak_bytes: dict[Hashable, int]


def measure_interleaved(runners: dict[Hashable, Callable[[], None]], runs: int, warmup: int,
                        sampler: PeakSampler, progress: Callable[[str], None] | None = None) -> PairTimes:
    """`warmup` untimed rounds, then `runs` timed rounds of every runner, order reversed every other round.

    Runners are e.g. the two models' stacks and the matrix-product reference; peaks of memory
    are attributed to each runner by name.
    """
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    order = list(runners)
    seconds: dict[Hashable, list[float]] = {m: [] for m in order}
    for r in range(warmup + runs):
        sequence = order if r % 2 == 0 else order[::-1]
        for key in sequence:
            sampler.phase(_name(key))
            t = timed(runners[key])
            sampler.phase(None)
            if r >= warmup:
                seconds[key].append(t)
        if progress is not None:
            if r < warmup:
                progress(f"  warm-up {r + 1}/{warmup}")
            else:
                progress(f"  run {r - warmup + 1}/{runs}: "
                         + ", ".join(f"{_label(m)} {seconds[m][-1] * 1e3:.1f} ms" for m in order))
    return PairTimes(
        seconds=seconds,
        host_peak_bytes={m: sampler.host_peak.get(_name(m), 0) for m in order},
        device_peak_bytes={m: sampler.device_peak.get(_name(m), 0) for m in order},
    )
