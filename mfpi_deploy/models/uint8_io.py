"""Deployment graphs: networks with pre- and post-processing inside, uint8 in and out.

Every engine takes a batch of uint8 tiles (N, H, W, C) and returns uint8 planes, so the
host does no float conversion and moves a quarter of the bytes.
"""

from __future__ import annotations

import torch
from torch import nn

from mfpi_deploy.models.deepz import DeepZGenerator, with_dpm
from mfpi_deploy.models.mfpinet import MFPINetGenerator


def to_unit_float(tiles: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1], the released code's input convention."""
    return tiles.permute(0, 3, 1, 2).to(dtype) / 255.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 by rounding to nearest (values outside are clamped)."""
    return (x.float() * 255.0).round().clamp(0.0, 255.0).to(torch.uint8)


class Uint8MFPINet(nn.Module):
    """uint8 (N, H, W, C) -> uint8 (N, planes, 2H, 2W, C) around an MFPINet generator."""

    def __init__(self, net: MFPINetGenerator) -> None:
        super().__init__()
        self.net = net

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        param = next(self.net.parameters())
        y = self.net(to_unit_float(tiles, param.dtype))
        cfg = self.net.config
        y = y.unflatten(1, (cfg.planes, cfg.in_channels))  # (N, Z, C, 2H, 2W)
        # uint8 first, then the layout: the transpose moves a quarter of the bytes, and the
        # runtime makes no float copy of the whole stack in the output layout
        return to_uint8(y).permute(0, 1, 3, 4, 2).contiguous()


class Uint8DeepZ(nn.Module):
    """uint8 (N, H, W, C) and DPM values (N,) float32 -> uint8 (N, sH, sW, C), one plane per pass."""

    def __init__(self, net: DeepZGenerator) -> None:
        super().__init__()
        self.net = net

    def forward(self, tiles: torch.Tensor, dpm: torch.Tensor) -> torch.Tensor:
        param = next(self.net.parameters())
        y = self.net(with_dpm(to_unit_float(tiles, param.dtype), dpm))
        return to_uint8(y).permute(0, 2, 3, 1).contiguous()
