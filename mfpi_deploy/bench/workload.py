"""What one benchmark "stack" (the same output volume for every model) is for each model, and what it costs:
MFPINet makes it in one pass from a half-resolution tile, Deep-Z in one pass per plane at full resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import Architecture, DeepZConfig, MFPINetConfig, profile_model, stack_dpm_values


class BenchModel(str, Enum):
    """The networks measured: Table III's two, and MFPINet's residual form (+ in-graph bicubic upsampling)."""

    MFPINET = "mfpinet"
    MFPINET_RESIDUAL = "mfpinet-residual"
    DEEPZ = "deepz"

    @property
    def label(self) -> str:
        name = Architecture.parse(self.architecture).label
        return f"{name} residual" if self is BenchModel.MFPINET_RESIDUAL else name

    @property
    def architecture(self) -> str:
        return "deepz" if self is BenchModel.DEEPZ else "mfpinet"


@dataclass(frozen=True)
class Workload:
    """One output stack of `planes` planes of `out_tile`^2 pixels x `channels`, for `batch` tiles."""

    model: BenchModel
    batch: int
    in_tile: int
    out_tile: int
    channels: int
    planes: int
    passes: int
    parameters: int
    flops_per_pass: int
    config: dict[str, object] = field(default_factory=dict)  # create_model's arguments

    @property
    def flops(self) -> int:
        """FLOPs of a whole stack (all passes; one multiply-add = 2 FLOPs)."""
        return self.flops_per_pass * self.passes

    @property
    def output_voxels(self) -> int:
        """Output voxels per stack: one voxel is one pixel of one plane (all colour channels)."""
        return self.batch * self.planes * self.out_tile * self.out_tile

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """uint8 engine input (N, H, W, C)."""
        return (self.batch, self.in_tile, self.in_tile, self.channels)

    @property
    def output_shape(self) -> tuple[int, int, int, int, int]:
        """uint8 output of a whole stack (N, planes, H, W, C)."""
        return (self.batch, self.planes, self.out_tile, self.out_tile, self.channels)

    def dpm_values(self) -> list[float]:
        """DPM constants of the passes, planes most negative z first (Deep-Z only)."""
        return stack_dpm_values(self.planes)

    def sample_input(self, seed: int = 0) -> np.ndarray:
        """A random uint8 input batch (timing does not depend on the pixel values)."""
        return np.random.default_rng(seed).integers(0, 256, self.input_shape, dtype=np.uint8)


def check_tile(tile: int) -> None:
    """Raise MfpiError unless `tile` (MFPINet input side) suits both networks."""
    # Deep-Z runs at 2*tile and needs a multiple of 16; MFPINet needs a multiple of 8: same thing.
    if tile <= 0 or tile % MFPINetConfig.STRIDE:
        raise MfpiError(
            f"--tile {tile}: must be a positive multiple of {MFPINetConfig.STRIDE} "
            f"(MFPINet input; Deep-Z runs at {2 * tile} and needs a multiple of {DeepZConfig.STRIDE})"
        )


def make_workloads(
    tile: int, batch: int, *, channels: int = 3, planes: int = 11, width: int | None = None
) -> dict[BenchModel, Workload]:
    """Every model's workload for an MFPINet input tile of `tile` pixels (output 2*tile) and `batch` tiles;
    `width` narrows every network (tests), None keeps the paper's."""
    check_tile(tile)
    if batch < 1:
        raise MfpiError(f"--batch {batch}: must be at least 1")
    out = MFPINetConfig.SCALE * tile
    found = {}
    for model in BenchModel:
        deepz = model is BenchModel.DEEPZ
        side, passes, in_channels = (out, planes, channels + 1) if deepz else (tile, 1, channels)  # Deep-Z: + DPM
        config: dict[str, object] = {"in_channels": in_channels}
        if not deepz:
            config["planes"] = planes
        if model is BenchModel.MFPINET_RESIDUAL:
            config["residual"] = True
        if width is not None:
            config["width"] = width
        cost = profile_model(model.architecture, (batch, in_channels, side, side), **config)
        found[model] = Workload(model, batch, side, out, channels, planes, passes, cost.parameters, cost.flops, config)
    return found
