"""The one interface every inference backend offers: describe what it accepts (an EngineSpec), run uint8."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfpi_deploy.choices import Choice
from mfpi_deploy.engine.identity import EngineIdentity
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError


class BackendKind(Choice):
    """Backends by the names the commands take (`--backend`)."""

    AUTO = "auto"
    TRT = "trt"
    ORT_CUDA = "ort-cuda"
    ORT_CPU = "ort-cpu"
    OPENVINO = "openvino"
    TORCH = "torch"


@dataclass(frozen=True)
class EngineFacts:
    """What a loaded backend is, without its session (which does not pickle): enough to plan a run
    on a machine that has no engine loaded, e.g. a Dask client whose workers hold the engines."""

    kind: BackendKind
    spec: EngineSpec
    description: str
    identity: EngineIdentity = EngineIdentity()
    device: str = "cpu"  # where it computes: "cpu" or "cuda"
    host_cores: int = 0  # CPU cores it keeps busy (0: a device engine, the host's encoding bounds a run)

    def describe(self) -> str:
        return self.description


class Backend(ABC):
    """An engine loaded on a device. Use as a context manager so device memory is freed."""

    kind: BackendKind
    spec: EngineSpec
    identity: EngineIdentity = EngineIdentity()  # set by open_backend: what a resume must match

    @abstractmethod
    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        """uint8 (N, H, W, C) -> uint8 (N, planes, sH, sW, C); `dpm` (N,) float32 for Deep-Z."""

    def in_flight(self) -> int:
        """Batches `run_many` keeps submitted at most: 1 for an engine that computes in `submit`;
        asynchronous engines (GPU streams, OpenVINO infer requests) say how many they can hold."""
        return 1

    def submit(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> Any:
        """Start a batch and return a ticket for `collect`. This default computes it at once."""
        return self.run(tiles, dpm)

    def collect(self, ticket: Any) -> np.ndarray:
        """The planes of a submitted batch, waiting for them. This default's ticket is the planes."""
        return ticket

    def run_many(self, batches: Iterable[np.ndarray | tuple[np.ndarray, np.ndarray | None]]) -> Iterator[np.ndarray]:
        """Outputs of `batches` (tiles, or (tiles, dpm) pairs) in order, with up to `in_flight()`
        batches submitted, so an asynchronous engine computes the next while the caller uses an
        output. Batches still in flight when the caller stops (an error, the generator closed) are
        collected and dropped, so the engine is free for the next call.
        """
        pending: deque[Any] = deque()
        depth = max(1, self.in_flight())
        try:
            for item in batches:
                tiles, dpm = item if isinstance(item, tuple) else (item, None)
                pending.append(self.submit(tiles, dpm))
                if len(pending) >= depth:
                    yield self.collect(pending.popleft())
            while pending:
                yield self.collect(pending.popleft())
        finally:
            while pending:
                with contextlib.suppress(Exception):  # abandoned: only its slot matters now
                    self.collect(pending.popleft())

    def device_type(self) -> str:
        """Where this backend computes: "cuda" for the GPU runtimes, "cpu" otherwise (torch says which)."""
        return "cuda" if self.kind in (BackendKind.TRT, BackendKind.ORT_CUDA) else "cpu"

    def host_cores(self) -> int:
        """CPU cores this backend keeps busy while it computes: none for a device engine (this
        default); a CPU engine says how many threads it runs, so a run gives its encoders the rest."""
        return 0

    def check_graph(self) -> None:
        """Run one smallest tile and compare the output's shape with the spec (planes, scale, channels).

        Called when a backend is opened, before any tile of a slide is read: a manifest that
        does not describe its graph is refused instead of labelling wrong output.
        """
        spec = self.spec
        side = spec.smallest_tile()
        tiles = np.zeros((1, side, side, spec.channels), np.uint8)
        dpm = np.zeros(1, np.float32) if spec.needs_dpm else None
        want = spec.output_shape(1, side, side)
        try:
            got = tuple(self.run(tiles, dpm).shape)
        except MfpiError:
            raise
        except Exception as exc:  # runtimes raise their own types for shape errors
            raise MfpiError(
                f"the engine's graph does not take what its manifest says ({spec.channels} channel(s), "
                f"tiles on a {spec.stride}-pixel grid): {str(exc).splitlines()[0][:160]}"
            ) from None
        if got != want:
            raise MfpiError(
                f"the engine's graph gives {got} for a {side}x{side} tile, but its manifest says "
                f"{want} ({spec.planes} planes at {spec.scale}x, {spec.channels} channel(s))"
            )

    def close(self) -> None:  # noqa: B027 (a no-op default, not abstract: host backends hold nothing)
        """Free device resources (nothing to do for host backends)."""

    def describe(self) -> str:
        return f"{self.kind.value} ({self.spec.architecture}, {self.spec.precision})"

    def facts(self) -> EngineFacts:
        return EngineFacts(self.kind, self.spec, self.describe(), self.identity, self.device_type(), self.host_cores())

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
