"""Deep Zoom (DZI) geometry, pure: levels, tile counts and the pixel box of every tile.

Level `max_level` is full resolution; each level below halves the one above, rounding up
(ceil(size / 2**k)), which is also how `output.pyramid.level_shapes` halves, so DZI level
`max_level - k` of an output is its pyramid level k. Level 0 is 1x1. Tiles are `tile` pixels
square with `overlap` extra pixels on every side that has a neighbour (the DZI convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.tiling import Box

FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class DziGeometry:
    """The Deep Zoom pyramid of a width x height image."""

    width: int
    height: int
    tile: int = 256
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise MfpiError(f"a Deep Zoom image needs a non-empty size, got {self.width}x{self.height}")
        if self.tile < 1 or not 0 <= self.overlap < self.tile:
            raise MfpiError(f"DZI tile {self.tile} with overlap {self.overlap}: need tile >= 1 and 0 <= overlap < tile")

    @property
    def max_level(self) -> int:
        """The full-resolution level: ceil(log2(longer side)), 0 for a 1x1 image."""
        return math.ceil(math.log2(max(self.width, self.height))) if max(self.width, self.height) > 1 else 0

    @property
    def levels(self) -> int:
        return self.max_level + 1

    def downsample(self, level: int) -> int:
        """Full-resolution pixels per pixel of `level` along each axis (a power of two)."""
        self.check_level(level)
        return 2 ** (self.max_level - level)

    def check_level(self, level: int) -> None:
        if not 0 <= level <= self.max_level:
            raise MfpiError(f"level {level} does not exist (levels 0..{self.max_level})")

    def level_shape(self, level: int) -> tuple[int, int]:
        """(height, width) of `level`."""
        d = self.downsample(level)
        return -(-self.height // d), -(-self.width // d)

    def grid(self, level: int) -> tuple[int, int]:
        """(rows, columns) of tiles at `level`."""
        h, w = self.level_shape(level)
        return -(-h // self.tile), -(-w // self.tile)

    def tile_box(self, level: int, col: int, row: int) -> Box:
        """The pixels of tile (col, row) at `level`, overlap included, in that level's coordinates."""
        rows, cols = self.grid(level)
        if not (0 <= col < cols and 0 <= row < rows):
            raise MfpiError(f"tile {col}_{row} does not exist at level {level} ({cols}x{rows} tiles)")
        h, w = self.level_shape(level)
        t, o = self.tile, self.overlap
        return Box(
            max(0, row * t - o),
            max(0, col * t - o),
            min(h, (row + 1) * t + o),
            min(w, (col + 1) * t + o),
        )

    def xml(self, fmt: str) -> str:
        """The .dzi descriptor (Deep Zoom Image schema 2008)."""
        if fmt not in FORMATS:
            raise MfpiError(f"tile format {fmt!r} is not one of {', '.join(FORMATS)}")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" '
            f'Format="{fmt}" Overlap="{self.overlap}" TileSize="{self.tile}">'
            f'<Size Width="{self.width}" Height="{self.height}"/></Image>\n'
        )


def full_resolution_box(box: Box, downsample: int, height: int, width: int) -> Box:
    """The full-resolution pixels a box of a level `downsample` times smaller covers (clipped to the image)."""
    full = box.scaled(downsample)
    return Box(full.y0, full.x0, min(full.y1, height), min(full.x1, width))
