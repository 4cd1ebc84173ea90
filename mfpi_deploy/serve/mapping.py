"""Which engine tiles a region of the refocused image needs, and how their cores make it: pure.

An engine tile of `mfpi-run`'s plan (`tiling.TilePlan`) writes its core, `plan.core` input
pixels square, scaled by the network's `scale` in the output. A box of full-resolution output
pixels is put together from the cores it overlaps, so a served tile holds the very values
`mfpi-run` writes there (crop-only stitching, no blending).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mfpi_deploy.output.pyramid import downsample2
from mfpi_deploy.tiling import Box, TilePlan


def engine_box(plan: TilePlan, scale: int, index: int) -> Box:
    """The output pixels engine tile `index` writes (its core, scaled)."""
    return plan.tile_at(index).core.scaled(scale)


def engine_tiles_over(plan: TilePlan, scale: int, box: Box) -> list[int]:
    """Indices of the engine tiles whose cores overlap `box` (full-resolution output pixels), row by row."""
    side = plan.core * scale
    if box.height <= 0 or box.width <= 0:
        return []
    rows = range(max(0, box.y0 // side), min(plan.rows, -(-box.y1 // side)))
    cols = range(max(0, box.x0 // side), min(plan.cols, -(-box.x1 // side)))
    return [r * plan.cols + c for r in rows for c in cols]


def assemble(
    plan: TilePlan, scale: int, box: Box, cores: Mapping[int, np.ndarray], planes: slice | list[int]
) -> np.ndarray:
    """The output pixels of `box` for the chosen `planes`, (Z, h, w, C) uint8, from the engine
    tiles' cores ((planes, h, w, C) each, as `stream_tiles` hands them over)."""
    out: np.ndarray | None = None
    for index in engine_tiles_over(plan, scale, box):
        core = cores[index]
        eb = engine_box(plan, scale, index)
        y0, x0 = max(box.y0, eb.y0), max(box.x0, eb.x0)
        y1, x1 = min(box.y1, eb.y1), min(box.x1, eb.x1)
        part = core[planes, y0 - eb.y0 : y1 - eb.y0, x0 - eb.x0 : x1 - eb.x0]
        if out is None:
            out = np.empty((part.shape[0], box.height, box.width, part.shape[-1]), np.uint8)
        out[:, y0 - box.y0 : y1 - box.y0, x0 - box.x0 : x1 - box.x0] = part
    if out is None:
        raise ValueError(f"box {box} lies outside the plan's {plan.height}x{plan.width} input pixels")
    return out


def reduce(planes: np.ndarray, downsample: int) -> np.ndarray:
    """(Z, h, w, C) at full resolution -> the same region `downsample` (a power of two) times smaller,
    by repeated 2x2 means: the values `mfpi-run`'s pyramid stores at that level, for a box aligned
    to `downsample` pixels (every DZI tile box scaled to full resolution is)."""
    while downsample > 1:
        planes = downsample2(planes)
        downsample //= 2
    return planes
