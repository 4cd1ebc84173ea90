"""Engine-ready input windows of a slide: region, reflection at the edges, pixel rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide.base import Slide, SlideError, SlideInputError
from mfpi_deploy.slide.pixels import PixelRule
from mfpi_deploy.tiling import Box, reflect_indices


@dataclass(frozen=True)
class Region:
    """A rectangle of the slide, x, y, width, height in pixels of the level read."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def parse(cls, text: str, option: str = "--region") -> Region:
        try:
            x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
        except ValueError:
            raise MfpiError(f"{option} must be x,y,w,h in pixels, got {text!r}") from None
        return cls(x, y, w, h)

    def check(self, height: int, width: int) -> Region:
        """This region, refused unless it lies inside a height x width image and is not empty."""
        if self.width <= 0 or self.height <= 0 or self.x < 0 or self.y < 0:
            raise MfpiError(f"region {self.describe()} is empty or starts before the image")
        if self.x + self.width > width or self.y + self.height > height:
            raise MfpiError(f"region {self.describe()} reaches outside the {width}x{height} image")
        return self

    def describe(self) -> str:
        return f"x={self.x} y={self.y} w={self.width} h={self.height}"


class TileSource:
    """Reads windows of a region as uint8 (h, w, channels); pixels outside come from reflection.

    Reflection is at the region's edges, so a region is processed exactly like the same
    pixels cut out into their own file.
    """

    def __init__(self, slide: Slide, rule: PixelRule, region: Region | None = None) -> None:
        info = slide.info
        self.slide = slide
        self.rule = rule
        self.region = (region or Region(0, 0, info.width, info.height)).check(info.height, info.width)

    @property
    def height(self) -> int:
        return self.region.height

    @property
    def width(self) -> int:
        return self.region.width

    def read(self, window: Box) -> np.ndarray:
        rows = reflect_indices(window.y0, window.y1, self.height)
        cols = reflect_indices(window.x0, window.x1, self.width)
        y0, y1 = int(rows.min()), int(rows.max()) + 1
        x0, x1 = int(cols.min()), int(cols.max()) + 1
        try:
            raw = self.slide.read(self.region.y + y0, self.region.y + y1, self.region.x + x0, self.region.x + x1)
        except SlideError as exc:
            raise SlideInputError(f"{self.slide.info.path}: {exc}") from None
        if raw.shape[:2] != (y1 - y0, x1 - x0):
            raise SlideInputError(
                f"{self.slide.info.path}: reader returned {raw.shape[:2]} for a "
                f"{y1 - y0}x{x1 - x0} window (file shorter than its header says?)"
            )
        contiguous = window.y0 >= 0 and window.x0 >= 0 and window.y1 <= self.height and window.x1 <= self.width
        if not contiguous:
            raw = raw[np.ix_(rows - y0, cols - x0)]
        return self.rule.apply(raw)
