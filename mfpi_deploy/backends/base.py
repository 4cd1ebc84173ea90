"""The one interface every inference backend offers: describe what it accepts, run uint8."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from mfpi_deploy.checkpoint.card import ModelCard
from mfpi_deploy.choices import Choice
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models.deepz import DeepZConfig
from mfpi_deploy.models.factory import Architecture
from mfpi_deploy.models.mfpinet import MFPINetConfig


class BackendKind(Choice):
    """Backends by the names the commands take (`--backend`)."""

    AUTO = "auto"
    TRT = "trt"
    ORT_CUDA = "ort-cuda"
    ORT_CPU = "ort-cpu"
    TORCH = "torch"


@dataclass(frozen=True)
class TileProfile:
    """Input tile sizes (square side, pixels) and batch sizes an engine accepts.

    None means "no limit" (onnxruntime and torch take any size on the stride grid).
    """

    opt_tile: int = 384
    min_tile: int | None = None
    max_tile: int | None = None
    opt_batch: int = 1
    max_batch: int | None = None

    def accepts(self, height: int, width: int, batch: int) -> bool:
        lo = self.min_tile or 0
        hi = self.max_tile or 1 << 30
        return lo <= height <= hi and lo <= width <= hi and batch <= (self.max_batch or 1 << 30)


@dataclass(frozen=True)
class EngineSpec:
    """What an engine computes: uint8 (N, H, W, channels) -> uint8 (N, planes, scale*H, scale*W, channels).

    For Deep-Z, planes is 1 per pass and the engine takes a second input, the DPM value per
    tile (`needs_dpm`).
    """

    architecture: str
    channels: int
    planes: int
    scale: int
    stride: int
    planes_um: tuple[float, ...]
    profiles: tuple[TileProfile, ...] = field(default_factory=lambda: (TileProfile(),))
    precision: str = "fp32"

    @property
    def needs_dpm(self) -> bool:
        return self.architecture == Architecture.DEEPZ.value

    @classmethod
    def from_card(cls, card: ModelCard, *, profiles: tuple[TileProfile, ...] | None = None,
                  precision: str = "fp32") -> EngineSpec:
        """The spec of a network described by its card (any tile on the stride grid)."""
        arch = Architecture.parse(card.architecture)
        if arch is Architecture.MFPINET:
            planes, scale, stride = card.config["planes"], MFPINetConfig.SCALE, MFPINetConfig.STRIDE
        elif arch is Architecture.DEEPZ:
            planes, scale, stride = 1, DeepZConfig.SCALE, DeepZConfig.STRIDE
        else:
            raise MfpiError(f"{arch.value} is not an image-to-stack network and cannot be deployed")
        return cls(
            architecture=arch.value, channels=card.channels, planes=planes, scale=scale,
            stride=stride, planes_um=tuple(card.planes_um),
            profiles=profiles or (TileProfile(),), precision=precision,
        )

    def output_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int, int]:
        return (batch, self.planes, self.scale * height, self.scale * width, self.channels)

    def check_batch(self, tiles: np.ndarray) -> None:
        """Raise MfpiError unless `tiles` is a uint8 (N, H, W, C) batch this engine accepts."""
        if tiles.dtype != np.uint8 or tiles.ndim != 4:
            raise MfpiError(f"engine input must be uint8 (N, H, W, C), got {tiles.dtype} {tiles.shape}")
        n, h, w, c = tiles.shape
        if c != self.channels:
            raise MfpiError(f"engine takes {self.channels} channel(s), got {c}")
        if h % self.stride or w % self.stride or h == 0 or w == 0:
            raise MfpiError(f"tile {h}x{w} is not on the network's {self.stride}-pixel grid")
        if not any(p.accepts(h, w, n) for p in self.profiles):
            raise MfpiError(f"tile {h}x{w} batch {n} is outside the engine's profiles {self.profiles}")


class Backend(ABC):
    """An engine loaded on a device. Use as a context manager so device memory is freed."""

    kind: BackendKind
    spec: EngineSpec

    @abstractmethod
    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        """uint8 (N, H, W, C) -> uint8 (N, planes, sH, sW, C); `dpm` (N,) float32 for Deep-Z."""

    def run_many(self, batches: Iterable[np.ndarray | tuple[np.ndarray, np.ndarray | None]]) -> Iterator[np.ndarray]:
        """Outputs of `batches` (tiles, or (tiles, dpm) pairs) in order.

        GPU backends override this to keep several batches in flight (copies overlap compute).
        """
        for item in batches:
            tiles, dpm = item if isinstance(item, tuple) else (item, None)
            yield self.run(tiles, dpm)

    def close(self) -> None:
        """Free device resources (nothing to do for host backends)."""

    def describe(self) -> str:
        return f"{self.kind.value} ({self.spec.architecture}, {self.spec.precision})"

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
