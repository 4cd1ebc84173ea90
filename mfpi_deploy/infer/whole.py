"""Whole-image output: the network over the whole (reflection-padded) image in one pass, untiled.

The reference tiled runs are measured against (seam tests, halo benchmark).
"""

from __future__ import annotations

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.tiling import reflect_indices, round_up


def whole_image(image: np.ndarray, backend: Backend, pad: int) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (planes, sH, sW, C): one pass over the image reflect-padded by
    `pad` (a multiple of the stride) on every side, extended to the stride grid, then cropped."""
    h, w = image.shape[:2]
    stride, scale = backend.spec.stride, backend.spec.scale
    rows = reflect_indices(-pad, round_up(h + pad, stride) + pad, h)
    cols = reflect_indices(-pad, round_up(w + pad, stride) + pad, w)
    padded = image[np.ix_(rows, cols)]
    out = backend.run(padded[None])[0]
    return out[:, scale * pad : scale * (pad + h), scale * pad : scale * (pad + w)]
