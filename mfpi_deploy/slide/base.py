"""What a slide reader offers: its size, samples, pixel type and physical pixel size, and windows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from mfpi_deploy.errors import MfpiError


class SlideError(Exception):
    """Raised by readers; turned into a one-line MfpiError naming the file by `open_slide`."""


class SlideInputError(MfpiError):
    """A slide that does not exist, cannot be read or cannot be processed (names the file)."""


@dataclass(frozen=True)
class SlideInfo:
    """One resolution level of a slide, as the reader sees it (raw pixels, before conversion)."""

    path: str
    height: int
    width: int
    samples: int  # samples per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
    dtype: np.dtype
    pixel_size_um: float | None  # at this level
    level: int
    levels: int
    format: str  # "tiff", "ome-tiff", "svs", "openslide"
    max_value: int | None = None  # MaxSampleValue tag, if the file states it
    series: int = 0  # which image of a file holding several (TIFF series)
    series_count: int = 1
    plane: int | None = None  # the z plane read, for a Z-stack (None: a 2D image)
    planes: int = 1  # z planes in the file


class Slide(ABC):
    """A lazily read 2D image; `read` returns raw (h, w, samples) pixels of one rectangle."""

    info: SlideInfo
    warnings: tuple[str, ...] = ()  # what the reader noticed but let pass (the run logs it)

    @abstractmethod
    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Raw pixels [y0:y1, x0:x1] as (h, w, samples), in the file's dtype."""

    def close(self) -> None:  # noqa: B027 - optional: readers without a file have nothing to release
        """Release the file."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
