"""An image already in memory, read through the same Slide interface as a file on disk."""

from __future__ import annotations

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide.base import Slide, SlideInfo


class ArraySlide(Slide):
    """A (H, W) or (H, W, samples) uint8/uint16 array as a one-level slide."""

    def __init__(self, image: np.ndarray, *, name: str = "<array>", pixel_size_um: float | None = None) -> None:
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or 0 in image.shape:
            raise MfpiError(f"{name}: expected an image (H, W[, samples]), got shape {image.shape}")
        self._image = image
        self.info = SlideInfo(
            path=name,
            height=image.shape[0],
            width=image.shape[1],
            samples=image.shape[2],
            dtype=image.dtype,
            pixel_size_um=pixel_size_um,
            level=0,
            levels=1,
            format="array",
        )

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self._image[y0:y1, x0:x1]
