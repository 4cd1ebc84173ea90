"""Tiling mathematics: cut an image into tiles on the network's grid, each with a halo.

Every tile is `core + 2 * halo` pixels square; only the core of its output is kept
(crop-only stitching). Cores start on multiples of the core size, so with core and halo
multiples of the network stride every tile lines up with the pooling grid of a whole-image
pass. Pixels outside the image come from reflection (numpy's "reflect" mode, repeated for
images smaller than the halo).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from mfpi_deploy.errors import MfpiError

# Measured with benchmarks/run/halo.py (benchmarks/run/results/halo-default.md for the
# bundled model, halo-random-init.md for a full-width random network): the smallest halo
# for which tiled output matches a whole-image pass (>= 99.9 % of uint8 values equal, none
# off by more than 2). The bundled model gives 99.92 % at 48 and 99.99 % at 64.
DEFAULT_HALO = 48
# The most a run accepts: beyond it a tile's compute goes mostly to halos (and a few halos as wide as
# a dynamic engine's largest tile would leave cores of a few pixels, millions of tiles).
MAX_HALO = 256


def check_halo(halo: int) -> None:
    """Refuse a halo no run uses: below 0 or above MAX_HALO."""
    if halo < 0:
        raise MfpiError(f"--halo must be at least 0, got {halo}")
    if halo > MAX_HALO:
        raise MfpiError(
            f"--halo must be at most {MAX_HALO} px, got {halo} (the bundled model needs {DEFAULT_HALO}; "
            "benchmarks/run/halo.py measures a model's)"
        )


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= value."""
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Box:
    """A half-open rectangle [y0, y1) x [x0, x1) in pixel coordinates."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def contains(self, other: Box) -> bool:
        return self.y0 <= other.y0 and self.x0 <= other.x0 and other.y1 <= self.y1 and other.x1 <= self.x1

    def overlaps(self, other: Box) -> bool:
        return self.y0 < other.y1 and other.y0 < self.y1 and self.x0 < other.x1 and other.x0 < self.x1

    def scaled(self, factor: int) -> Box:
        return Box(self.y0 * factor, self.x0 * factor, self.y1 * factor, self.x1 * factor)


@dataclass(frozen=True)
class Tile:
    """One tile: its input window (may reach outside the image) and the core it writes."""

    index: int
    row: int
    col: int
    window: Box
    core: Box  # clipped to the image

    def crop(self, halo: int, scale: int) -> tuple[slice, slice]:
        """Where the core lies in this tile's output (output pixels)."""
        oy = (self.core.y0 - self.window.y0) * scale
        ox = (self.core.x0 - self.window.x0) * scale
        return slice(oy, oy + self.core.height * scale), slice(ox, ox + self.core.width * scale)


@dataclass(frozen=True)
class TilePlan:
    """Square tiles of side `tile` with `halo` pixels on every side over a height x width image."""

    height: int
    width: int
    tile: int
    halo: int
    stride: int = 8

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise MfpiError(f"cannot tile an empty image ({self.height}x{self.width})")
        if self.tile % self.stride or self.halo % self.stride or self.halo < 0:
            raise MfpiError(f"tile {self.tile} and halo {self.halo} must be multiples of {self.stride}")
        if self.core <= 0:
            raise MfpiError(f"tile {self.tile} leaves no core inside a halo of {self.halo} on each side")

    @property
    def core(self) -> int:
        return self.tile - 2 * self.halo

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.core)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.core)

    @property
    def n_tiles(self) -> int:
        return self.rows * self.cols

    def tile_at(self, index: int) -> Tile:
        if not 0 <= index < self.n_tiles:
            raise IndexError(index)
        row, col = divmod(index, self.cols)
        y, x = row * self.core, col * self.core
        window = Box(y - self.halo, x - self.halo, y - self.halo + self.tile, x - self.halo + self.tile)
        core = Box(y, x, min(y + self.core, self.height), min(x + self.core, self.width))
        return Tile(index, row, col, window, core)

    def tiles(self) -> Iterator[Tile]:
        return (self.tile_at(i) for i in range(self.n_tiles))

    @property
    def computed_pixels(self) -> int:
        return self.n_tiles * self.tile * self.tile

    @property
    def halo_overhead(self) -> float:
        """Share of computed input pixels thrown away (halos and overhang past the image edge)."""
        return 1.0 - self.height * self.width / self.computed_pixels


def batches(count: int, batch: int) -> list[range]:
    """Fixed groups of consecutive tile indices; the same on every run, so resumes are exact."""
    return [range(i, min(i + batch, count)) for i in range(0, count, batch)]


def reflect_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices into an axis of length n for positions start..stop-1, mirrored at the edges.

    Same values as numpy.pad(mode="reflect") for any pad width (the edge pixel is not repeated).
    """
    pos = np.arange(start, stop)
    if n == 1:
        return np.zeros_like(pos)
    period = 2 * (n - 1)
    pos = np.mod(pos, period)
    return np.where(pos < n, pos, period - pos)


def tile_candidates(lo: int, hi: int, stride: int) -> range:
    return range(round_up(lo, stride), hi + 1, stride)


@dataclass(frozen=True)
class TileProfile:
    """Input tile sides (square, pixels) and batch sizes one engine profile accepts.

    None means "no limit" (onnxruntime and torch take any size on the stride grid); TensorRT
    engines have one such profile per optimisation profile.
    """

    opt_tile: int = 384
    min_tile: int | None = None
    max_tile: int | None = None
    opt_batch: int = 1
    max_batch: int | None = None

    def accepts(self, height: int, width: int, batch: int) -> bool:
        lo = self.min_tile or 0
        hi = self.max_tile or 1 << 30
        return lo <= height <= hi and lo <= width <= hi and batch <= (self.max_batch or 1 << 30)


MAX_DYNAMIC_TILE = 1024  # largest tile chosen for engines without a maximum tile
OUTPUT_TILE = 256  # output tile side viewers are tuned for (TIFF tiles, pyramid tiles): cores align to it
# Cores of whole 1024 output px give 512 px output tiles and a pyramid level cut from each engine
# tile; 1280 px cores (736 px tiles at 2x) give 256 px tiles and none. Where the engine keeps no host
# cores, the host's encoding is what a run waits for, and the wide cores are taken if they compute at
# most WIDE_CORE_MARGIN more pixels: on a 16384^2 null-engine run (608 against 736 px tiles, 3.4%
# more pixels) the host path took 47.4 s instead of 79.2 s (a quarter of the tiles to encode, check,
# index and copy), wrote 11% less and peaked 79 MB lower (benchmarks/run/results/host-tiles-16384-amx.md).
# A CPU engine keeps the fewest pixels: on large slides such cores cost it up to 6.6% more pixels,
# more than the host's saving for a slow (fp32) engine; a fast INT8 one may gain from --tile 608.
WIDE_CORE = 1024
WIDE_CORE_MARGIN = 0.25


def choose_plan(
    height: int,
    width: int,
    halo: int,
    profiles: Iterable[TileProfile],
    stride: int = 8,
    tile: int | None = None,
    scale: int | None = None,
    host_bound: bool = False,
) -> tuple[TilePlan, int]:
    """The tile size (within the engine's profiles) that computes the fewest pixels, and a batch.

    Profiles with a maximum tile (TensorRT) are used as they are, at their optimum batch.
    Profiles without one (onnxruntime, torch) keep the pixels per call the engine was sized
    for (opt_batch x opt_tile^2): tiles up to that area (and MAX_DYNAMIC_TILE), with the
    batch shrunk to match, so fewer pixels go to halos at the same memory.
    A given `tile` is checked against the profiles instead. With the network's `scale`, only tiles
    whose output core is a multiple of OUTPUT_TILE are candidates (the output's tiles then line up
    with the cores: each is encoded once, by one engine tile), unless none fits. With `host_bound`
    (an engine that keeps no host cores), cores of whole WIDE_CORE output px are preferred while
    they compute at most WIDE_CORE_MARGIN more pixels.
    Returns (plan, batch size).
    """
    profiles = tuple(profiles)
    if halo % stride:
        raise MfpiError(f"halo {halo} must be a multiple of the network's stride ({stride} px)")
    if tile is not None and tile % stride:
        raise MfpiError(f"tile {tile} must be a multiple of the network's stride ({stride} px)")
    core_multiple = max(stride, OUTPUT_TILE // scale) if scale else 1
    if tile is not None:
        tile = fitted_tile(height, width, halo, tile, max(stride, core_multiple), profiles)
    if tile is None and core_multiple > 1:
        with contextlib.suppress(MfpiError):
            aligned = _choose(height, width, halo, profiles, stride, None, core_multiple)
            if host_bound:  # core_multiple > 1: scale is known
                with contextlib.suppress(MfpiError):
                    wide = _choose(height, width, halo, profiles, stride, None, max(stride, WIDE_CORE // scale))
                    if wide[0].computed_pixels <= (1 + WIDE_CORE_MARGIN) * aligned[0].computed_pixels:
                        return wide
            return aligned
    return _choose(height, width, halo, profiles, stride, tile, 1)


def fitted_tile(height: int, width: int, halo: int, tile: int, multiple: int, profiles: tuple[TileProfile, ...]) -> int:
    """A given `tile` no larger than the image needs: one tile whose core (a multiple of
    `multiple`) covers it, if a profile takes that size; else `tile` as given. A tile far larger
    than the slide would only compute (and hold in memory) reflected padding."""
    need = round_up(max(height, width), multiple) + 2 * halo
    if tile <= need or not any((p.min_tile or 0) <= need for p in profiles):
        return tile
    return need


def _choose(
    height: int,
    width: int,
    halo: int,
    profiles: tuple[TileProfile, ...],
    stride: int,
    tile: int | None,
    core_multiple: int,
) -> tuple[TilePlan, int]:
    best: tuple[int, int, TilePlan, int] | None = None
    for prof in profiles:
        lo = max(prof.min_tile or 0, 2 * halo + stride)
        budget = max(1, prof.opt_batch) * prof.opt_tile**2
        if prof.max_tile:
            hi = prof.max_tile
        else:  # the engine's pixels per call, and room for a core as wide as the halo (wide halos)
            hi = max(lo, min(MAX_DYNAMIC_TILE, max(math.isqrt(budget), 3 * halo + stride) // stride * stride))
        if tile is not None:
            if not (lo <= tile <= (prof.max_tile or 1 << 30) and tile % stride == 0):
                continue
            sizes: Iterable[int] = (tile,)
        else:
            sizes = tile_candidates(lo, hi, stride)
        for size in sizes:
            if (size - 2 * halo) % core_multiple:
                continue
            plan = TilePlan(height, width, size, halo, stride)
            if prof.max_tile:
                batch = prof.opt_batch
            else:
                batch = budget // (size * size)
            batch = max(1, min(batch, prof.max_batch or batch, plan.n_tiles))
            # fewest computed pixels first, then closest to the engine's optimum tile
            key = (plan.computed_pixels, abs(size - prof.opt_tile))
            if best is None or key < best[:2]:
                best = (*key, plan, batch)
    if best is None:
        what = f"tile {tile}" if tile is not None else f"halo {halo}"
        raise MfpiError(f"no tile size fits the engine's profiles with {what} (stride {stride})")
    return best[2], best[3]
