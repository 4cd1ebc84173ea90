"""The 2x pyramid, grown as engine tiles finish instead of in a pass after the last one.

Levels 0..`direct` are cut from each engine tile's own output (its core is a whole number of
tiles at those levels). The level above (`direct + 1`) is put together from the pieces the engine
tiles left there, and every higher tile is the 2x2 mean of four finished tiles below it. All of
it is computed from lossless planes (pieces and finished upper tiles are kept as .npy files in
the staging folder until their parent is made), so a resumed or distributed run writes the same
pixels as one uninterrupted run. The mathematics (`PyramidGrid`) is pure; `PyramidBuilder` adds
the files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mfpi_deploy.fileio import write_durable
from mfpi_deploy.opencv import cv2
from mfpi_deploy.tiling import Box

MIN_LEVEL_SIDE = 256  # stop the pyramid when a level's longer side is this small
TILE_SIDES = (512, 256, 128, 64, 32, 16)  # output tile sides, largest first (TIFF tiles are multiples of 16)


def level_shapes(height: int, width: int, min_side: int = MIN_LEVEL_SIDE) -> tuple[tuple[int, int], ...]:
    """(height, width) of every level, halving (rounding up) until the longer side <= min_side."""
    shapes = [(height, width)]
    while max(shapes[-1]) > min_side:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return tuple(shapes)


def tile_side(core: int, largest: int = TILE_SIDES[0]) -> int:
    """The largest tile side in TILE_SIDES (up to `largest`) that divides the engine core (output px)."""
    for side in TILE_SIDES:
        if side <= largest and core % side == 0:
            return side
    raise ValueError(f"engine core {core} is not a multiple of 16 output pixels")


def downsample2(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """2x2 mean of (Z, h, w, C) uint8, rounding half up; an odd last row/column is averaged alone
    (as if repeated). Written into `out` (Z, ceil(h/2), ceil(w/2), C) when given (it may be a
    view, such as a quadrant of a larger tile), else into a new array; returns it.

    OpenCV's area resize at exactly 2x ((sum + 2) >> 2, vectorised), same values as Pillow's box
    reduction, which converted every RGB plane to 4 bytes a pixel and back (11 planes of
    1024x1024 RGB: 38 ms there, about 4 ms here on one core). OpenCV writes the result in place.
    Contiguous planes of even height go in one call, stacked one above another (a 2x mean of an
    even-height stack never mixes two planes' rows): 12-30% less time than a call per plane
    (11 planes of 512 to 1216 px square, AMX Xeon core)."""
    z, h, w, c = block.shape
    shape = (z, (h + 1) // 2, (w + 1) // 2, c)
    if out is None:
        out = np.empty(shape, np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise ValueError(f"downsample2 of {block.shape} writes {shape} uint8, not {out.shape} {out.dtype}")
    if h % 2 or w % 2:
        block = np.pad(block, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)], mode="edge")
    size = (shape[2], shape[1])  # OpenCV's (width, height)
    if block.flags.c_contiguous and out.flags.c_contiguous:
        src, dst = block.reshape(-1, block.shape[2], c), out.reshape(-1, shape[2], c)
        cv2.resize(
            src[..., 0] if c == 1 else src,
            (size[0], z * size[1]),
            dst=dst[..., 0] if c == 1 else dst,
            interpolation=cv2.INTER_AREA,
        )
        return out
    for i, plane in enumerate(block):  # rows may be strided (a core cut from a tile): OpenCV takes the step
        if c > 1:
            cv2.resize(plane, size, dst=out[i], interpolation=cv2.INTER_AREA)
        else:
            cv2.resize(plane[..., 0], size, dst=out[i, ..., 0], interpolation=cv2.INTER_AREA)
    return out


def _halve(box: Box, shape: tuple[int, int]) -> Box:
    return Box(box.y0 // 2, box.x0 // 2, min(-(-box.y1 // 2), shape[0]), min(-(-box.x1 // 2), shape[1]))


@dataclass(frozen=True)
class PyramidGrid:
    """Levels, the engine's core grid at level 0 and the tile side of every level (output pixels)."""

    shapes: tuple[tuple[int, int], ...]
    core: int  # engine core side at level 0 (a multiple of `tile`)
    tile: int

    def __post_init__(self) -> None:
        if self.core % self.tile:
            raise ValueError(f"engine core {self.core} is not a multiple of the tile side {self.tile}")

    @property
    def levels(self) -> int:
        return len(self.shapes)

    @property
    def direct(self) -> int:
        """The highest level cut from each engine tile alone (its block there is whole tiles)."""
        k = 0
        while k + 1 < self.levels and self.core % (self.tile * 2 ** (k + 1)) == 0:
            k += 1
        return k

    @property
    def engine_rows(self) -> int:
        return -(-self.shapes[0][0] // self.core)

    @property
    def engine_cols(self) -> int:
        return -(-self.shapes[0][1] // self.core)

    def engine_block(self, row: int, col: int, level: int) -> Box:
        """The box an engine tile's core covers at `level` (<= direct + 1)."""
        h, w = self.shapes[0]
        box = Box(row * self.core, col * self.core, min((row + 1) * self.core, h), min((col + 1) * self.core, w))
        for k in range(1, level + 1):
            box = _halve(box, self.shapes[k])
        return box

    def grid(self, level: int) -> tuple[int, int]:
        """Rows and columns of tiles at `level`."""
        h, w = self.shapes[level]
        return -(-h // self.tile), -(-w // self.tile)

    def tile_box(self, level: int, row: int, col: int) -> Box:
        h, w = self.shapes[level]
        t = self.tile
        return Box(row * t, col * t, min((row + 1) * t, h), min((col + 1) * t, w))

    def tiles_in(self, level: int, box: Box) -> list[tuple[int, int]]:
        """Tiles of `level` that overlap `box`, row by row."""
        t = self.tile
        return [(r, c) for r in range(box.y0 // t, -(-box.y1 // t)) for c in range(box.x0 // t, -(-box.x1 // t))]

    def sources(self, row: int, col: int) -> list[tuple[int, int]]:
        """Engine tiles (row, col) whose pieces make tile (row, col) of level direct + 1."""
        box = self.tile_box(self.direct + 1, row, col).scaled(2 ** (self.direct + 1))
        h, w = self.shapes[0]
        y1, x1 = min(box.y1, h), min(box.x1, w)
        return [
            (r, c)
            for r in range(box.y0 // self.core, -(-y1 // self.core))
            for c in range(box.x0 // self.core, -(-x1 // self.core))
        ]

    def children(self, level: int, row: int, col: int) -> list[tuple[int, int]]:
        """Tiles of `level - 1` whose 2x2 mean is tile (row, col) of `level` (> direct + 1)."""
        rows, cols = self.grid(level - 1)
        return [(r, c) for r in (2 * row, 2 * row + 1) for c in (2 * col, 2 * col + 1) if r < rows and c < cols]


class TileSink(Protocol):
    """Where finished pyramid pixels go (encoded TIFF tiles, or Zarr chunks)."""

    def put_engine_tile(self, index: int, blocks: list[tuple[int, Box, np.ndarray]]) -> None:
        """An engine tile's blocks of levels 0..direct: (level, box, planes (Z, h, w, C)); durable on return."""

    def put_tile(self, level: int, row: int, col: int, planes: np.ndarray) -> None:
        """One tile of a level above `direct`; durable on return."""


class PyramidBuilder:
    """Feeds a sink every level of every finished engine tile, and builds the levels above
    `direct` as soon as what they need is there (or all at once with `complete`)."""

    def __init__(self, grid: PyramidGrid, root: str | Path, sink: TileSink) -> None:
        self.grid, self.root, self.sink = grid, Path(root), sink
        self.lock = threading.Lock()  # guards the claims, not the building: writers encode upper tiles at once
        self._building: set[tuple[int, int, int]] = set()  # upper tiles a writer has claimed and is making

    # -- files: pieces of level direct+1 per engine tile, finished tiles of the levels above direct
    def _piece(self, level_tile: tuple[int, int], engine: tuple[int, int]) -> Path:
        r, c = level_tile
        return self.root / f"{self.grid.direct + 1}" / f"{r}_{c}" / f"{engine[0]}_{engine[1]}.npy"

    def _raw(self, level: int, row: int, col: int) -> Path:
        return self.root / f"{level}" / f"{row}_{col}.npy"

    def done(self, level: int, row: int, col: int) -> bool:
        """A tile above `direct` is done when its lossless copy is kept, or its parent is done."""
        if self._raw(level, row, col).is_file():
            return True
        return level + 1 < self.grid.levels and self.done(level + 1, row // 2, col // 2)

    def add_engine_tile(self, row: int, col: int, planes: np.ndarray, *, build: bool = True) -> None:
        """The lossless core of engine tile (row, col), (Z, h, w, C): levels 0..direct to the sink,
        its pieces of the level above kept; then (with `build`) every upper tile it completes."""
        grid = self.grid
        index = row * grid.engine_cols + col
        blocks = []
        for level in range(grid.direct + 1):
            if level:
                planes = downsample2(planes)
            blocks.append((level, grid.engine_block(row, col, level), planes))
        self.sink.put_engine_tile(index, blocks)
        if grid.direct + 1 >= grid.levels:
            return
        upper = grid.direct + 1
        block = grid.engine_block(row, col, upper)
        seed = downsample2(planes)
        touched = grid.tiles_in(upper, block)
        for r, c in touched:
            box = grid.tile_box(upper, r, c)
            y0, x0 = max(box.y0, block.y0), max(box.x0, block.x0)
            y1, x1 = min(box.y1, block.y1), min(box.x1, block.x1)
            piece = seed[:, y0 - block.y0 : y1 - block.y0, x0 - block.x0 : x1 - block.x0]
            write_durable(self._piece((r, c), (row, col)), _npy(piece))
        if build:
            for r, c in touched:
                self._build_up(upper, r, c)

    def complete(self) -> None:
        """Build every upper tile not yet done (after the last engine tile; idempotent)."""
        with self.lock:
            for level in range(self.grid.direct + 1, self.grid.levels):
                rows, cols = self.grid.grid(level)
                for r in range(rows):
                    for c in range(cols):
                        if self.done(level, r, c):
                            continue
                        inputs = self._inputs(level, r, c)
                        if inputs is None:
                            raise RuntimeError(f"pyramid level {level} tile {r},{c}: inputs missing")
                        self._build(level, r, c, inputs)

    def _build_up(self, level: int, row: int, col: int) -> None:
        """Build (level, row, col) if all it needs is there, then its parent, and so on up. A tile is
        claimed under the lock and built outside it, so writers build different tiles at once; its
        inputs are complete when it is claimed (a tile's inputs are written before their writer
        looks at the parent), and only its claimant reads or removes them."""
        while level < self.grid.levels:
            key = (level, row, col)
            with self.lock:
                if key in self._building or self.done(*key):
                    return
                inputs = self._inputs(*key)
                if inputs is None:
                    return
                self._building.add(key)
            try:
                self._build(*key, inputs)
            finally:
                with self.lock:
                    self._building.discard(key)
            level, row, col = level + 1, row // 2, col // 2

    def _inputs(self, level: int, row: int, col: int) -> list[tuple[Path, Box]] | None:
        """The files tile (level, row, col) is made from, each with its box at `level`, or None if one is missing."""
        grid = self.grid
        if level == grid.direct + 1:
            box = grid.tile_box(level, row, col)
            found = []
            for er, ec in grid.sources(row, col):
                block = grid.engine_block(er, ec, level)
                part = Box(max(box.y0, block.y0), max(box.x0, block.x0), min(box.y1, block.y1), min(box.x1, block.x1))
                found.append((self._piece((row, col), (er, ec)), part))
        else:
            found = [
                (self._raw(level - 1, r, c), grid.tile_box(level - 1, r, c)) for r, c in grid.children(level, row, col)
            ]
        return found if all(path.is_file() for path, _ in found) else None

    def _build(self, level: int, row: int, col: int, inputs: list[tuple[Path, Box]]) -> None:
        """Make tile (level, row, col) from `inputs` (what `_inputs` found), keep it, remove them."""
        grid = self.grid
        box = grid.tile_box(level, row, col)
        if level == grid.direct + 1:
            planes = _assemble(inputs, box, halve=False)
        else:  # each child's 2x mean lands in its quadrant (children start at even pixels)
            planes = _assemble([(path, _halve(child, grid.shapes[level])) for path, child in inputs], box, halve=True)
        self.sink.put_tile(level, row, col, planes)
        write_durable(self._raw(level, row, col), _npy(planes))
        for path, _ in inputs:  # the inputs are not needed once this tile is kept
            path.unlink(missing_ok=True)
        if level == grid.direct + 1:
            _rmdir(self._piece((row, col), (0, 0)).parent)


def _assemble(inputs: Iterable[tuple[Path, Box]], span: Box, *, halve: bool) -> np.ndarray:
    """The tile `span` put together from .npy files, each with the box it covers in `span`'s level:
    copied there, or (`halve`) its 2x mean written there. The files are mapped, not read into
    memory, and together they must cover `span`."""
    out: np.ndarray | None = None
    covered = 0
    for path, box in inputs:
        part = np.load(path, mmap_mode="r")
        if out is None:
            out = np.empty((part.shape[0], span.height, span.width, part.shape[-1]), np.uint8)
        where = out[:, box.y0 - span.y0 : box.y1 - span.y0, box.x0 - span.x0 : box.x1 - span.x0]
        if halve:
            downsample2(part, out=where)
        else:
            where[...] = part
        covered += box.height * box.width
        del part  # unmap before the caller removes the file
    if out is None or covered != span.height * span.width:
        raise RuntimeError(f"pyramid tile {span}: its inputs cover {covered} of {span.height * span.width} pixels")
    return out


def _npy(array: np.ndarray) -> list[bytes | memoryview]:
    """An .npy file's bytes (as np.save writes them) as its header and the array's own memory,
    so write_durable writes the pixels without another copy."""
    import io

    array = np.ascontiguousarray(array)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(array))
    return [head.getvalue(), memoryview(array).cast("B")]


def _rmdir(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
