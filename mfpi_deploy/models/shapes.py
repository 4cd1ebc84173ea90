"""Shape rules of the networks: stride checks and padded sizes, shared by models and tiling."""

from __future__ import annotations

import torch

from mfpi_deploy.errors import InputShapeError
from mfpi_deploy.tiling import round_up


def check_input(x: torch.Tensor, *, channels: int, stride: int, name: str) -> None:
    """Raise InputShapeError unless x is (N, channels, H, W) with H and W multiples of stride.

    Skipped while tracing or exporting, where shapes are symbolic and a check would pin them.
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    if x.dim() != 4:
        raise InputShapeError(f"{name} takes a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise InputShapeError(f"{name} takes {channels} input channel(s), got {x.shape[1]}")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % stride or w % stride or h == 0 or w == 0:
        raise InputShapeError(
            f"{name} needs height and width that are positive multiples of {stride}, got {h}x{w}"
            f" (pad to {max(stride, round_up(h, stride))}x{max(stride, round_up(w, stride))})"
        )
