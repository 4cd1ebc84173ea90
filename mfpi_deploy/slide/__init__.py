"""Lazy, tile-by-tile reading of whole-slide images (the TIFF family, and OpenSlide formats)."""

from mfpi_deploy.slide.base import Slide, SlideError, SlideInfo
from mfpi_deploy.slide.open import SlideInputError, open_slide
from mfpi_deploy.slide.pixels import PixelRule, pixel_rule
from mfpi_deploy.slide.source import Region, TileSource

__all__ = [
    "PixelRule",
    "Region",
    "Slide",
    "SlideError",
    "SlideInfo",
    "SlideInputError",
    "TileSource",
    "open_slide",
    "pixel_rule",
]
