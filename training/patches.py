"""Patch sampling: split into train/validation regions, keep patches with cell foreground.

Regions are whole blocks of the image, assigned to training or validation by seed, and a
patch lies inside one block, so no pixel is in both sets. Foreground is found on the
input (in-focus) plane as 8x8 cells whose standard deviation exceeds a threshold: flat
background (bright empty glass, or the even grey of phase contrast) has none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.tiling import Box

CELL = 8  # foreground is judged on 8x8 cells; patch corners lie on this grid


@dataclass(frozen=True)
class Foreground:
    """Foreground test: a patch is kept if >= min_fraction of its 8x8 cells have std >= min_std."""

    min_std: float = 4.0
    min_fraction: float = 0.25

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_std) and self.min_std >= 0 and 0 <= self.min_fraction <= 1):
            raise MfpiError(
                f"foreground test: --fg-min-std must be 0 or more and --fg-min-fraction 0..1, "
                f"got {self.min_std} and {self.min_fraction}"
            )


DEFAULT_PATCH = 128
DEFAULT_BLOCK = 256
MIN_BLOCKS = 6  # blocks a region should hold when sizes are chosen for it (train + validation)
MIN_SIDE = 32  # smallest patch and block side chosen automatically
PATCH_STEP = 16  # patches are multiples of the network stride (8) x the degradation scale (2)
VAL_MIN, VAL_MAX = 16, 256  # validation patches when sized from the data (enough to rank epochs; cheap to score)


def fit_sizes(
    regions: list[tuple[int, int]], patch: int | None, block: int | None, val_fraction: float
) -> tuple[int, int]:
    """(patch, block) for training regions of (height, width): given values are checked, missing
    ones chosen so the regions hold at least MIN_BLOCKS blocks (fewer if they are small) and a
    patch fits in a block. Errors name the cause and the option that fixes it."""

    def count(b: int) -> int:
        return sum((h // b) * (w // b) for h, w in regions)

    need = 2 if val_fraction > 0 else 1
    smallest = min(min(h, w) for h, w in regions)
    if block is None:
        sizes = range(DEFAULT_BLOCK, MIN_SIDE - 1, -PATCH_STEP)
        block = next((b for b in sizes if count(b) >= MIN_BLOCKS), None) or next(
            (b for b in reversed(sizes) if count(b) >= need and b >= (patch or MIN_SIDE)), None
        )
        if block is None:
            raise MfpiError(
                f"the training region is too small ({smallest} px on its short side): it must hold "
                f"{need} blocks of at least {max(patch or 0, MIN_SIDE)} px (training and validation); "
                f"give a larger --region" + (" or a smaller --patch" if patch else "")
            )
    elif count(block) < need:
        raise MfpiError(
            f"the training region ({smallest} px on its short side) holds {count(block)} block(s) of "
            f"{block} px but needs {need} (training and validation): use a smaller --block"
            + (" or --val-fraction 0" if need == 2 else "")
        )
    if patch is None:
        patch = min(DEFAULT_PATCH, max(MIN_SIDE, int(0.75 * block) // PATCH_STEP * PATCH_STEP))
        patch = min(patch, block // PATCH_STEP * PATCH_STEP) or PATCH_STEP
    elif patch > block:
        raise MfpiError(
            f"patch {patch} px is larger than the block of {block} px that patches are drawn from: "
            f"use --patch {block // PATCH_STEP * PATCH_STEP} or less, or a larger --block"
        )
    return patch, block


@dataclass(frozen=True)
class Region:
    """A block of one source stack (index into the list of training stacks)."""

    source: int
    rect: Box


def split_blocks(
    rect: Box, block: int, val_fraction: float, seed: int, source: int = 0
) -> tuple[list[Region], list[Region]]:
    """Tile `rect` with block x block squares (the remainder at the far edges is unused) and
    give a fraction of them to validation, spread over the region (`spread_choice`): a small
    region's validation then samples all of it, not one corner that may be unlike the rest."""
    if block < CELL or block % CELL:
        raise MfpiError(f"block size must be a positive multiple of {CELL}, got {block}")
    if not 0.0 <= val_fraction < 1.0:
        raise MfpiError(f"validation fraction must be in [0, 1), got {val_fraction}")
    rows, cols = rect.height // block, rect.width // block
    if rows * cols == 0:
        raise MfpiError(f"region {rect.height}x{rect.width} is smaller than one block of {block}x{block}")
    blocks = [
        Region(
            source, Box(rect.y0 + r * block, rect.x0 + c * block, rect.y0 + (r + 1) * block, rect.x0 + (c + 1) * block)
        )
        for r in range(rows)
        for c in range(cols)
    ]
    n_val = int(round(val_fraction * len(blocks)))
    if val_fraction > 0:
        n_val = min(max(n_val, 1), len(blocks) - 1)
    if len(blocks) - n_val < 1:
        raise MfpiError("no block left for training; use a smaller block size or validation fraction")
    val_ids = set(spread_choice(rows, cols, n_val, np.random.default_rng([seed, source, 7])))
    train = [b for i, b in enumerate(blocks) if i not in val_ids]
    val = [b for i, b in enumerate(blocks) if i in val_ids]
    return train, val


def spread_choice(rows: int, cols: int, count: int, rng: np.random.Generator) -> list[int]:
    """`count` of the rows x cols blocks (row-major indices), evenly spaced along a serpentine walk
    of the grid (rows alternate direction, so neighbours in the walk are neighbours in the image),
    starting at a seeded offset: different seeds give different blocks, every seed covers the region."""
    n = rows * cols
    if count <= 0:
        return []
    walk = [r * cols + (c if r % 2 == 0 else cols - 1 - c) for r in range(rows) for c in range(cols)]
    step = n / count
    start = rng.uniform(0, step)
    return sorted({walk[min(int(start + k * step), n - 1)] for k in range(count)})


def validation_patches(
    candidates: list[tuple[int, Box]], area: int, patch: int, count: int | None = None
) -> list[tuple[int, Box]]:
    """The fixed validation set: `count` patches, or (None) as many as cover the validation area
    about twice (between VAL_MIN and VAL_MAX), taken evenly from the candidates without repeats,
    so every validation block is scored and no patch counts twice."""
    if not candidates:
        return []
    if count is None:
        count = int(min(VAL_MAX, max(VAL_MIN, round(2 * area / patch**2))))
    if count >= len(candidates):
        return list(candidates)
    keep = np.linspace(0, len(candidates) - 1, count).round().astype(int)
    return [candidates[i] for i in keep]


def cell_std(plane: np.ndarray) -> np.ndarray:
    """Standard deviation of each 8x8 cell of a uint8 plane (H, W, C) -> (H//8, W//8), over grey."""
    g = plane.astype(np.float32)
    if g.ndim == 3:
        g = g.mean(axis=-1)
    h, w = (g.shape[0] // CELL) * CELL, (g.shape[1] // CELL) * CELL
    cells = g[:h, :w].reshape(h // CELL, CELL, w // CELL, CELL)
    return cells.std(axis=(1, 3))


def foreground_cells(plane: np.ndarray, fg: Foreground) -> np.ndarray:
    """Boolean (H//8, W//8): which 8x8 cells hold foreground."""
    return cell_std(plane) >= fg.min_std


def is_foreground(plane: np.ndarray, fg: Foreground) -> bool:
    """Whether one patch (H, W, C) passes the foreground test."""
    return bool(foreground_cells(plane, fg).mean() >= fg.min_fraction)


class ForegroundIndex:
    """Where patches of a given size pass the foreground test inside a block (integral image)."""

    def __init__(self, cells: np.ndarray) -> None:
        self.cells = cells
        self._sum = np.pad(cells.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def fractions(self, patch: int) -> np.ndarray:
        """Foreground fraction of every patch whose corner is on the cell grid: (rows, cols)."""
        k = patch // CELL
        s = self._sum
        if k > self.cells.shape[0] or k > self.cells.shape[1]:
            return np.zeros((0, 0))
        tot = s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]
        return tot / float(k * k)


MAX_PER_BLOCK = 1024  # bounds memory on whole slides; smaller blocks keep every position


def candidate_patches(
    region: Region, plane: np.ndarray, patch: int, fg: Foreground, max_per_block: int = MAX_PER_BLOCK
) -> list[Box]:
    """Foreground patch positions (on the 8-pixel grid) of a block, given its input plane;
    evenly thinned to at most `max_per_block` so a whole slide's list stays small."""
    if patch % CELL:
        raise MfpiError(f"patch size must be a multiple of {CELL}, got {patch}")
    fr = ForegroundIndex(foreground_cells(plane, fg)).fractions(patch)
    ys, xs = np.nonzero(fr >= fg.min_fraction)
    if len(ys) > max_per_block:
        keep = np.linspace(0, len(ys) - 1, max_per_block).round().astype(int)
        ys, xs = ys[keep], xs[keep]
    r = region.rect
    return [
        Box(r.y0 + int(y) * CELL, r.x0 + int(x) * CELL, r.y0 + int(y) * CELL + patch, r.x0 + int(x) * CELL + patch)
        for y, x in zip(ys, xs)
    ]


def draw(candidates: list[tuple[int, Box]], count: int, rng: np.random.Generator) -> list[tuple[int, Box]]:
    """`count` patches drawn uniformly (with replacement) from the candidates, reproducibly."""
    if not candidates:
        raise MfpiError("no patch passes the foreground test; lower --fg-min-std / --fg-min-fraction or check the data")
    idx = rng.integers(0, len(candidates), size=count)
    return [candidates[i] for i in idx]
