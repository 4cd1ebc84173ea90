"""Which plane of a Z-stack is in focus: the variance of the Laplacian, a pure focus measure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mfpi_deploy.errors import MfpiError

FOCUS_BLOCK = 1024  # side of the central block a Z-stack's planes are compared on (pixels of the level read)
MIN_FOCUS_SIDE = 3  # the Laplacian needs a neighbour on every side of a pixel
FOCUS_BIN = 2  # the block is binned k x k before measuring: less weight on pixel noise, less work


def sharpness(plane: np.ndarray) -> float:
    """Focus measure: variance of the Laplacian of a grey plane (higher = sharper)."""
    g = plane.astype(np.float32)
    if g.ndim == 3:
        g = g.mean(axis=-1)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def binned(plane: np.ndarray, k: int = FOCUS_BIN) -> np.ndarray:
    """k x k mean of a (h, w[, samples]) plane as float32 grey; a ragged last row/column is dropped."""
    g = plane.astype(np.float32)
    if g.ndim == 3:
        g = g.mean(axis=-1)
    h, w = (g.shape[0] // k) * k, (g.shape[1] // k) * k
    if h < k or w < k:
        return g
    return g[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def sharpest_plane(planes: Sequence[np.ndarray], k: int = FOCUS_BIN) -> int:
    """Index of the sharpest of the planes (the first of equals): variance of the Laplacian after
    k x k binning (none where binning would leave fewer than MIN_FOCUS_SIDE pixels a side).
    MfpiError for planes smaller than that: the Laplacian has no pixel to measure there."""
    if not planes:
        raise ValueError("no planes to compare")
    h, w = planes[0].shape[:2]
    if min(h, w) < MIN_FOCUS_SIDE:
        raise MfpiError(
            f"a {h}x{w} px region is too small to measure focus on (at least {MIN_FOCUS_SIDE}x{MIN_FOCUS_SIDE})"
        )
    if min(h, w) < MIN_FOCUS_SIDE * k:
        k = 1
    return int(np.argmax([sharpness(binned(p, k)) for p in planes]))


def central_block(height: int, width: int, side: int = FOCUS_BLOCK) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the centred block of at most side x side pixels."""
    h, w = min(side, height), min(side, width)
    y0, x0 = (height - h) // 2, (width - w) // 2
    return y0, y0 + h, x0, x0 + w
