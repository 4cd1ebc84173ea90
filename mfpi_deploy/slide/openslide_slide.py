"""OpenSlide formats (MRXS, NDPI, SCN, VMS, ...) through openslide-python (the `openslide` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfpi_deploy.slide.base import Slide, SlideError, SlideInfo

OPENSLIDE_SUFFIXES = (".mrxs", ".ndpi", ".vms", ".vmu", ".scn", ".bif", ".svslide")


class OpenSlideSlide(Slide):
    """One level of an OpenSlide slide, read region by region as RGBA, alpha dropped later."""

    def __init__(self, path: str | Path, level: int = 0) -> None:
        try:
            import openslide
        except ImportError:
            raise SlideError(
                "this format needs openslide-python: pip install 'mfpi-deploy[openslide]' "
                "(and the OpenSlide library, e.g. apt install libopenslide0)"
            ) from None
        self.path = Path(path)
        try:
            self._slide = openslide.OpenSlide(str(self.path))
        except Exception as exc:
            raise SlideError(f"OpenSlide cannot open it ({exc})") from None
        if not 0 <= level < self._slide.level_count:
            raise SlideError(f"level {level} does not exist (the slide has {self._slide.level_count} level(s))")
        self._level = level
        self._downsample = self._slide.level_downsamples[level]
        width, height = self._slide.level_dimensions[level]
        mpp = self._slide.properties.get("openslide.mpp-x")
        self.info = SlideInfo(
            path=str(self.path),
            height=height,
            width=width,
            samples=4,
            dtype=np.dtype(np.uint8),
            pixel_size_um=float(mpp) * self._downsample if mpp else None,
            level=level,
            levels=self._slide.level_count,
            format="openslide",
        )

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        # read_region takes level-0 coordinates for the origin and level sizes for the extent
        origin = (int(x0 * self._downsample), int(y0 * self._downsample))
        region = self._slide.read_region(origin, self._level, (x1 - x0, y1 - y0))
        return np.asarray(region)

    def close(self) -> None:
        self._slide.close()
