"""The output stack as OME-Zarr (NGFF 0.4 on zarr format 2): axes c, z, y, x, a 2x pyramid.

Level 0 is chunked (1, 1, chunk, chunk) with chunk = one tile's output core, so each tile
writes its chunks exactly once.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import numcodecs
import numpy as np
import zarr

from mfpi_deploy.output.layout import StackLayout
from mfpi_deploy.tiling import Box

NGFF_VERSION = "0.4"
MIN_LEVEL_SIDE = 256  # stop the pyramid when a level's longer side is this small
MIN_PYRAMID_CHUNK = 256  # levels 1.. use chunks at least this big (small chunks cost per-chunk overhead)
_COLOURS = {1: ["FFFFFF"], 3: ["FF0000", "00FF00", "0000FF"]}
_NAMES = {1: ["grey"], 3: ["R", "G", "B"]}


def _compressor() -> numcodecs.abc.Codec:
    return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.NOSHUFFLE)


def create_stack(path: str | Path, layout: StackLayout) -> zarr.Array:
    """Create the group and its level-0 array (empty chunks read as 0); returns level 0."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    arr = _create_level(group, "0", layout.shape, layout.chunk)
    group.attrs.update(ngff_attrs(layout, 1))
    return arr


def _create_level(group: zarr.Group, name: str, shape: tuple[int, ...], chunk: int) -> zarr.Array:
    return group.create_array(
        name,
        shape=shape,
        chunks=(1, 1, chunk, chunk),
        dtype="uint8",
        fill_value=0,
        compressors=_compressor(),
        chunk_key_encoding={"name": "v2", "separator": "/"},
        overwrite=True,
    )


def open_level(path: str | Path, level: int = 0, mode: str = "r") -> zarr.Array:
    return zarr.open_array(str(Path(path) / str(level)), mode=mode, zarr_format=2)


def write_core(arr: zarr.Array, core_out: Box, planes: np.ndarray) -> None:
    """Write one tile's core: planes uint8 (Z, h, w, C) into [:, :, y0:y1, x0:x1]."""
    arr[:, :, core_out.y0 : core_out.y1, core_out.x0 : core_out.x1] = np.moveaxis(planes, -1, 0)


# zarr's LocalStore writes a chunk as <key>.<uuid hex>.partial, then renames it to <key>
_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_temporaries(path: str | Path) -> int:
    """Delete chunk files a killed writer left half-written under their temporary names; returns how many."""
    removed = 0
    for folder, _, files in os.walk(path):
        for name in files:
            if _TEMPORARY.search(name):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def pyramid_chunk(layout: StackLayout) -> int:
    """Chunk side of levels 1..: the tile chunk, or a multiple of it of at least 256."""
    return layout.chunk * -(-MIN_PYRAMID_CHUNK // layout.chunk)


def pyramid_shapes(layout: StackLayout, min_side: int = MIN_LEVEL_SIDE) -> list[tuple[int, int]]:
    """(height, width) of every level, halving (rounding up) until the longer side <= min_side."""
    shapes = [(layout.height, layout.width)]
    while max(shapes[-1]) > min_side:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def downsample2(block: np.ndarray) -> np.ndarray:
    """2x2 mean of (..., h, w) uint8, rounding half up; odd edges repeat the last row/column."""
    h, w = block.shape[-2:]
    if h % 2 or w % 2:
        pad = [(0, 0)] * (block.ndim - 2) + [(0, h % 2), (0, w % 2)]
        block = np.pad(block, pad, mode="edge")
    b = block.astype(np.uint16)
    s = b[..., 0::2, 0::2] + b[..., 1::2, 0::2] + b[..., 0::2, 1::2] + b[..., 1::2, 1::2]
    return ((s + 2) // 4).astype(np.uint8)


def build_pyramid(path: str | Path, layout: StackLayout, min_side: int = MIN_LEVEL_SIDE) -> int:
    """Write levels 1.. from level 0 block by block (bounded memory); returns the level count."""
    group = zarr.open_group(str(path), mode="r+", zarr_format=2)
    shapes = pyramid_shapes(layout, min_side)
    prev = group["0"]
    step = pyramid_chunk(layout)
    for level, (h, w) in enumerate(shapes[1:], start=1):
        arr = _create_level(group, str(level), (layout.channels, layout.planes, h, w), step)
        for y in range(0, h, step):
            for x in range(0, w, step):
                src = prev[:, :, 2 * y : 2 * min(y + step, h), 2 * x : 2 * min(x + step, w)]
                out = downsample2(src)
                arr[:, :, y : y + out.shape[-2], x : x + out.shape[-1]] = out
        prev = arr
    group.attrs.update(ngff_attrs(layout, len(shapes)))
    return len(shapes)


def ngff_attrs(layout: StackLayout, levels: int) -> dict:
    """NGFF 0.4 `multiscales` (physical sizes) and `omero` (channel colours) attributes."""
    unit = {"unit": "micrometer"} if layout.pixel_size_um else {}
    px = layout.pixel_size_um or 1.0
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", **unit},
        {"name": "x", "type": "space", **unit},
    ]
    datasets = [
        {
            "path": str(k),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, layout.z_spacing_um, px * 2**k, px * 2**k]},
                {"type": "translation", "translation": [0.0, float(layout.planes_um[0]), 0.0, 0.0]},
            ],
        }
        for k in range(levels)
    ]
    multiscales = [
        {
            "version": NGFF_VERSION,
            "name": layout.name,
            "axes": axes,
            "datasets": datasets,
            "type": "mean",
            "metadata": {"description": "2x2 mean of the level above", "planes_um": list(layout.planes_um)},
        }
    ]
    omero = {
        "name": layout.name,
        "version": NGFF_VERSION,
        "rdefs": {"model": "color" if layout.channels == 3 else "greyscale"},
        "channels": [
            {"label": n, "color": c, "active": True, "window": {"min": 0, "max": 255, "start": 0, "end": 255}}
            for n, c in zip(_NAMES[layout.channels], _COLOURS[layout.channels])
        ],
    }
    return {"multiscales": multiscales, "omero": omero, "mfpi": {"layout": layout.to_dict()}}


def read_layout(path: str | Path) -> StackLayout:
    group = zarr.open_group(str(path), mode="r", zarr_format=2)
    return StackLayout.from_dict(group.attrs["mfpi"]["layout"])


def level_count(path: str | Path) -> int:
    group = zarr.open_group(str(path), mode="r", zarr_format=2)
    return len(group.attrs["multiscales"][0]["datasets"])


def settle_io(timeout: float = 30.0) -> None:
    """Wait for zarr's background I/O tasks after a failed write, retrieving their errors.

    zarr writes the chunks of one assignment concurrently on its own event loop; when one
    fails (a full disk), the assignment raises at once and the others keep running. Left
    alone, they are torn down at interpreter exit with a screenful of asyncio messages.
    """
    try:
        from zarr.core import sync as zsync
    except ImportError:  # pragma: no cover - other zarr layouts
        return
    loop = zsync.loop[0] if getattr(zsync, "loop", None) else None
    if loop is None or not loop.is_running() or loop.is_closed():
        return

    async def drain() -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            if task.done() and not task.cancelled():
                task.exception()  # mark it retrieved

    try:
        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout + 5)
    except Exception:  # best effort: never hide the error being reported
        pass
