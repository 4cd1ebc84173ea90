"""What one benchmark "stack" is for each model, and what it costs.

MFPINet makes the whole stack in one pass from a tile at half resolution (tile -> 2*tile);
Deep-Z makes one plane per pass at full resolution, so a stack of P planes takes P passes,
each with its own DPM value. Both produce the same output volume.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import DeepZConfig, MFPINetConfig, dpm_value, profile_model


class BenchModel(str, Enum):
    """The two networks Table III compares."""

    MFPINET = "mfpinet"
    DEEPZ = "deepz"

    @property
    def label(self) -> str:
        return "MFPINet" if self is BenchModel.MFPINET else "Deep-Z"


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
        half = self.planes // 2
        return [dpm_value(i - half) for i in range(self.planes)]

    def sample_input(self, seed: int = 0) -> np.ndarray:
        """A random uint8 input batch (timing does not depend on the pixel values)."""
        return np.random.default_rng(seed).integers(0, 256, self.input_shape, dtype=np.uint8)


def check_tile(tile: int) -> None:
    """Raise MfpiError unless `tile` (MFPINet input side) suits both networks."""
    # Deep-Z runs at 2*tile and needs a multiple of 16; MFPINet needs a multiple of 8: same thing.
    if tile <= 0 or tile % MFPINetConfig.STRIDE:
        raise MfpiError(f"--tile {tile}: must be a positive multiple of {MFPINetConfig.STRIDE} "
                        f"(MFPINet input; Deep-Z runs at {2 * tile} and needs a multiple of {DeepZConfig.STRIDE})")


def make_workloads(tile: int, batch: int, *, channels: int = 3, planes: int = 11,
                   mfpinet_width: int = 64, deepz_width: int = 48) -> dict[BenchModel, Workload]:
    """Both workloads for an MFPINet input tile of `tile` pixels (output 2*tile) and `batch` tiles."""
    check_tile(tile)
    if batch < 1:
        raise MfpiError(f"--batch {batch}: must be at least 1")
    out = MFPINetConfig.SCALE * tile
    mfpi = profile_model("mfpinet", (batch, channels, tile, tile), in_channels=channels,
                         planes=planes, width=mfpinet_width)
    deepz = profile_model("deepz", (batch, channels + 1, out, out), in_channels=channels + 1,
                          width=deepz_width)
    return {
        BenchModel.MFPINET: Workload(BenchModel.MFPINET, batch, tile, out, channels, planes, 1,
                                     mfpi.parameters, mfpi.flops),
        BenchModel.DEEPZ: Workload(BenchModel.DEEPZ, batch, out, out, channels, planes, planes,
                                   deepz.parameters, deepz.flops),
    }
