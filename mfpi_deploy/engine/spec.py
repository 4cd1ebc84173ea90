"""What an engine computes: uint8 tiles (N, H, W, C) -> uint8 planes (N, Z, sH, sW, C), and which sizes."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfpi_deploy.checkpoint.card import ModelCard
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models.configs import Architecture, MFPINetConfig, make_config
from mfpi_deploy.tiling import TileProfile


@dataclass(frozen=True)
class EngineSpec:
    """The network contract of an engine and the tile/batch sizes it takes.

    For a Deep-Z engine, planes is 1 per pass and the engine takes a second input, the DPM value
    per tile (`needs_dpm`); `backends.sweep.PlaneSweep` runs it once per plane and presents the
    whole stack (planes = len(planes_um)), as an MFPINet engine gives it. `precision` is that of
    the artifact a backend runs (not stored in the manifest's engine block: each artifact records
    its own).
    """

    architecture: str
    channels: int
    planes: int
    scale: int
    stride: int
    planes_um: tuple[float, ...]
    profiles: tuple[TileProfile, ...] = field(default_factory=lambda: (TileProfile(),))
    precision: str = "fp32"
    z_in_steps: bool = False  # planes_um are plane steps (the model card's flag; kept out of manifests when false)

    def __post_init__(self) -> None:
        """A spec read from a hand-edited or damaged manifest is refused here, before any tile."""
        for name in ("planes", "scale", "stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MfpiError(f"engine {name} must be a whole number of at least 1, got {value!r}")
        if self.channels not in (1, 3):
            raise MfpiError(f"engine channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        if not all(isinstance(z, (int, float)) and math.isfinite(z) for z in self.planes_um):
            raise MfpiError(f"engine planes_um must be numbers, got {list(self.planes_um)!r}")
        if not self.needs_dpm and len(self.planes_um) != self.planes:
            raise MfpiError(f"engine lists {len(self.planes_um)} plane offsets (planes_um) for {self.planes} planes")

    @property
    def needs_dpm(self) -> bool:
        """A raw Deep-Z engine: one plane per pass, chosen by a DPM input."""
        return self.architecture == Architecture.DEEPZ.value and self.planes == 1

    @classmethod
    def from_card(
        cls, card: ModelCard, *, profiles: tuple[TileProfile, ...] | None = None, precision: str = "fp32"
    ) -> EngineSpec:
        """The spec of a network described by its card (any tile on the stride grid)."""
        arch = Architecture.parse(card.architecture)
        if arch is Architecture.MFPINET:
            planes, scale, stride = card.config["planes"], MFPINetConfig.SCALE, MFPINetConfig.STRIDE
        elif arch is Architecture.DEEPZ:
            cfg = make_config(arch, **card.config)
            planes, scale, stride = 1, cfg.scale, cfg.input_stride
        else:
            raise MfpiError(f"{arch.value} is not an image-to-stack network and cannot be deployed")
        return cls(
            architecture=arch.value,
            channels=card.channels,
            planes=planes,
            scale=scale,
            stride=stride,
            planes_um=tuple(card.planes_um),
            profiles=profiles or (TileProfile(),),
            precision=precision,
            z_in_steps=card.z_in_steps,
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest's engine block (precision belongs to each artifact, so it is left out)."""
        data = dataclasses.asdict(self)
        data.pop("precision")
        data["planes_um"] = list(self.planes_um)
        if not self.z_in_steps:  # manifests (and the engine identity) of micrometre models stay as they were
            del data["z_in_steps"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, precision: str = "fp32") -> EngineSpec:
        fields = {k: v for k, v in data.items() if k != "precision"}
        profiles = tuple(TileProfile(**p) for p in fields.pop("profiles", [])) or (TileProfile(),)
        return cls(**{**fields, "planes_um": tuple(fields["planes_um"]), "profiles": profiles, "precision": precision})

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

    def smallest_tile(self) -> int:
        """The smallest square tile every profile's range starts from (for a probe run)."""
        lo = min((p.min_tile or self.stride) for p in self.profiles)
        return max(self.stride, -(-lo // self.stride) * self.stride)
