"""Which CPU engine is fastest here: a short interleaved timing, cached per machine and engine.

`--backend auto` on a CPU may have several engines that passed their gates (OpenVINO
int8/bf16/fp32, onnxruntime int8/fp32). Which wins depends on the CPU (VNNI, bf16, cores),
so it is measured once, as a tile loop runs them (`run_many` over PROBE_TILES tiles, so an
engine that computes batches side by side is timed doing so): one warm-up, then ROUNDS rounds
running each candidate in turn (ABAB..., so a busy machine slows all alike), median per candidate. The result is kept in
cache_root()/probe/<machine>.json under the engine's manifest hash and thread count.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.engine.cache import cache_root
from mfpi_deploy.engine.manifest import MANIFEST_NAME
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.fileio import write_atomic
from mfpi_deploy.machine import cpu_details
from mfpi_deploy.timing import interleaved

ROUNDS = 3
PROBE_TILE = 128  # input side of the probe tile (a 256x256 output stack): seconds per candidate
PROBE_TILES = 4  # tiles per timed loop


@dataclass(frozen=True)
class Candidate:
    """One way to run an engine folder: a backend and the precision variant it runs."""

    kind: BackendKind
    precision: Precision

    @property
    def name(self) -> str:
        return f"{self.kind.value} {self.precision.value}"

    @classmethod
    def parse(cls, name: str) -> Candidate:
        kind, precision = name.split()
        return cls(BackendKind.parse(kind), Precision.parse(precision))


def machine_key() -> str:
    """Names this machine for the cache: CPU model, SIMD flags, core count, runtime versions."""
    import os
    from importlib import metadata

    versions = []
    for package in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package}=-")
    cpu = cpu_details()
    blob = f"{cpu.name}|{' '.join(cpu.flags)}|{os.cpu_count()}|{'|'.join(versions)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def engine_key(folder: str | Path, threads: int | None) -> str:
    """The engine (its manifest's hash: every artifact's hash is in it) and the thread count."""
    digest = hashlib.sha256((Path(folder) / MANIFEST_NAME).read_bytes()).hexdigest()[:16]
    return f"{digest}|threads={threads or 'all'}|tile={PROBE_TILE}|loop={PROBE_TILES}"


class ProbeCache:
    """Probe timings of this machine: {engine key: {candidate name: seconds}} in one JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_root() / "probe" / f"{machine_key()}.json"

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, candidates: list[Candidate]) -> dict[Candidate, float] | None:
        """Cached timings of exactly these candidates, or None (then measure again)."""
        entry = self._read().get(key)
        if not isinstance(entry, dict) or sorted(entry) != sorted(c.name for c in candidates):
            return None
        return {Candidate.parse(name): float(seconds) for name, seconds in entry.items()}

    def put(self, key: str, timings: dict[Candidate, float]) -> None:
        data = self._read()
        data[key] = {c.name: round(s, 6) for c, s in timings.items()}
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def time_candidates(
    backends: dict[Candidate, Backend], *, rounds: int = ROUNDS, side: int = PROBE_TILE
) -> dict[Candidate, float]:
    """Median seconds per probe tile of each opened backend in a loop of PROBE_TILES tiles (`run_many`),
    rounds interleaved with the order reversed every other round (`timing.interleaved`), after a
    warm-up round."""
    first = next(iter(backends.values())).spec
    side = max(first.stride, side // first.stride * first.stride)
    tiles = np.random.default_rng(0).integers(0, 256, (1, side, side, first.channels), dtype=np.uint8)
    dpm = np.zeros(1, np.float32) if first.needs_dpm else None
    loop = [(tiles, dpm)] * PROBE_TILES
    runners = {c: (lambda b=b: deque(b.run_many(loop), maxlen=0)) for c, b in backends.items()}
    seconds = interleaved(runners, rounds, warmup=1)  # the warm-up round compiles the shape, fills caches
    return {c: float(np.median(s)) / PROBE_TILES for c, s in seconds.items()}  # type: ignore[misc]


def fastest(timings: dict[Candidate, float], order: tuple[Candidate, ...]) -> Candidate:
    """The candidate with the least time; ties go to the earlier one in `order`."""
    rank = {c: i for i, c in enumerate(order)}
    return min(timings, key=lambda c: (timings[c], rank.get(c, len(rank))))


def describe_timings(timings: dict[Candidate, float]) -> str:
    return ", ".join(f"{c.name} {1000 * s:.0f} ms" for c, s in sorted(timings.items(), key=lambda kv: kv[1]))


Opener = Callable[[Candidate], Backend]
