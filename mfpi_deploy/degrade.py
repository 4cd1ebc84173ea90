"""The paper's input degradation: bicubic downscale by 2, then a 5x5 Gaussian blur (sigma 3).

Applied to the input plane only; the target planes stay at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mfpi_deploy.errors import MfpiError


class DegradationError(MfpiError, ValueError):
    """A degradation setting no image can be degraded with."""


@dataclass(frozen=True)
class Degradation:
    """scale: downscale factor (2 = the network's scale); blur_size 0 or sigma 0 disables the blur.

    antialias: bicubic with an antialiasing filter (like PIL's resize) when True, plain
    bicubic sampling (like OpenCV's INTER_CUBIC) when False.
    """

    scale: int = 2
    blur_size: int = 5
    blur_sigma: float = 3.0
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise DegradationError(f"the degradation's scale must be 1 or more, got {self.scale}")
        if self.blur_size < 0 or (self.blur_size and self.blur_size % 2 == 0):
            raise DegradationError(f"--blur-size must be odd (or 0: no blur), got {self.blur_size}")
        if self.blur_sigma < 0:
            raise DegradationError(f"--blur-sigma must be 0 (no blur) or more, got {self.blur_sigma}")


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised 1D Gaussian window of odd `size` (as OpenCV's getGaussianKernel)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).astype(np.float32)


def degrade_tensor(x: torch.Tensor, d: Degradation = Degradation()) -> torch.Tensor:
    """Degrade float images (N, C, H, W) in [0, 1] -> (N, C, H/scale, W/scale), float, in [0, 1]."""
    n, c, h, w = x.shape
    if h % d.scale or w % d.scale:
        raise ValueError(f"image size {h}x{w} is not a multiple of the scale {d.scale}")
    if d.scale > 1:
        x = F.interpolate(
            x, size=(h // d.scale, w // d.scale), mode="bicubic", align_corners=False, antialias=d.antialias
        )
    if d.blur_size > 1 and d.blur_sigma > 0:
        k = torch.from_numpy(gaussian_kernel(d.blur_size, d.blur_sigma)).to(x)
        p = d.blur_size // 2
        # Reflect border (OpenCV's default BORDER_REFLECT_101), separable passes.
        x = F.pad(x, (p, p, 0, 0), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        x = F.pad(x, (0, 0, p, p), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x.clamp(0.0, 1.0)


def degrade_uint8(image: np.ndarray, d: Degradation = Degradation()) -> np.ndarray:
    """Degrade one uint8 image (H, W, C) -> uint8 (H/scale, W/scale, C), rounded."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    out = degrade_tensor(t, d)[0].permute(1, 2, 0).numpy()
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def upsample_bicubic(image: np.ndarray, scale: int = 2) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (sH, sW, C) by bicubic interpolation (the baseline's upsampling)."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    out = F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0]
    return np.clip(np.rint(out.permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
