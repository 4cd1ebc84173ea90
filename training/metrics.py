"""Per-plane image metrics on 8-bit stacks: PSNR (peak 255), SSIM, MSE, MAE (scikit-image)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity


@dataclass(frozen=True)
class PlaneMetrics:
    """Metrics of one focal plane; psnr is inf for identical images."""

    psnr: float
    ssim: float
    mse: float
    mae: float


def plane_metrics(pred: np.ndarray, target: np.ndarray) -> PlaneMetrics:
    """Metrics of one uint8 plane (H, W, C) against its target, over all channels."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {target.shape}")
    if pred.dtype != np.uint8 or target.dtype != np.uint8:
        raise ValueError("metrics are defined on uint8 images")
    mse = float(mean_squared_error(target, pred))
    psnr = math.inf if mse == 0 else float(peak_signal_noise_ratio(target, pred, data_range=255))
    channel_axis = -1 if pred.ndim == 3 and pred.shape[-1] > 1 else None
    p, t = (
        (pred, target) if channel_axis is not None else (pred.reshape(pred.shape[:2]), target.reshape(target.shape[:2]))
    )
    ssim = float(structural_similarity(t, p, data_range=255, channel_axis=channel_axis))
    mae = float(np.mean(np.abs(pred.astype(np.float64) - target.astype(np.float64))))
    return PlaneMetrics(psnr, ssim, mse, mae)


def stack_metrics(pred: np.ndarray, target: np.ndarray) -> list[PlaneMetrics]:
    """Per-plane metrics of uint8 stacks (Z, H, W, C)."""
    if pred.shape != target.shape:
        raise ValueError(f"stack shapes differ: {pred.shape} vs {target.shape}")
    return [plane_metrics(p, t) for p, t in zip(pred, target)]


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of 8-bit data (peak 255) from a mean squared error."""
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0**2 / mse)


def mean_psnr(per_plane: list[PlaneMetrics]) -> float:
    """Mean of the per-plane PSNRs (the paper's 'mean' row)."""
    return float(np.mean([m.psnr for m in per_plane]))
