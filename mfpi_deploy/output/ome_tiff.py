"""OME-TIFF from a finished OME-Zarr stack in the layout Bio-Formats (QuPath, Fiji) reads best.

BigTIFF, one tiled and compressed IFD per focal plane (RGB pages for RGB stacks), the 2x
pyramid in each plane's SubIFDs, tiles of 256 or 512 pixels, and OME-XML that validates
against the OME schema: SizeZ, physical sizes with units and each plane's PositionZ.
Tiles are streamed from the Zarr a band at a time, so memory stays bounded.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
import zarr

from mfpi_deploy.output import zarr_stack
from mfpi_deploy.output.layout import StackLayout

TIFF_TILES = (256, 512)  # the tile sides viewers (QuPath, Bio-Formats) are tuned for


def tiff_tile_size(layout: StackLayout) -> int:
    """TIFF tile side: 512 for stacks chunked at 512 or more, else 256."""
    return TIFF_TILES[1] if layout.chunk >= TIFF_TILES[1] else TIFF_TILES[0]


def _row_tiles(level: zarr.Array, z: int, y: int, tile: int) -> Iterator[np.ndarray]:
    """The tiles of one tile row of plane z, (C, h, w) each; every Zarr chunk the row touches is
    read once (the row is read in chunk-aligned segments kept until the tiles pass them)."""
    width, step = level.shape[-1], level.chunks[-1]
    rows = slice(y, min(y + tile, level.shape[-2]))
    buf, start = level[:, z, rows, 0:0], 0  # buf holds columns [start, start + buf width)
    for x in range(0, width, tile):
        need = min(x + tile, width)
        end = start + buf.shape[-1]
        if end < need:
            new_end = min(width, -(-need // step) * step)
            buf = np.concatenate([buf[..., x - start :], level[:, z, rows, end:new_end]], axis=-1)
            start = x
        yield buf[..., x - start : need - start]


def _tiles(level: zarr.Array, tile: int) -> Iterator[np.ndarray]:
    channels, planes, h, _ = level.shape
    for z in range(planes):
        for y in range(0, h, tile):
            for block in _row_tiles(level, z, y, tile):
                block = np.moveaxis(block, 0, -1)
                yield block if channels > 1 else block[..., 0]


def write_ome_tiff(
    stack_path: str | Path,
    out_path: str | Path,
    *,
    tile: int | None = None,
    compression: str = "zlib",
    levels: int | None = None,
    uuid: str | None = None,
) -> None:
    """Write `out_path` from the OME-Zarr at `stack_path` (all its pyramid levels).

    The file's bytes depend only on the stack and the arguments: give `uuid` (the OME UUID)
    for that; without it, one is derived from the stack's layout. No timestamps are written.
    """
    layout = zarr_stack.read_layout(stack_path)
    tile = tile or tiff_tile_size(layout)
    n_levels = levels or zarr_stack.level_count(stack_path)
    rgb = layout.channels == 3
    options = dict(
        tile=(tile, tile),
        compression=compression,
        dtype=np.uint8,
        photometric="rgb" if rgb else "minisblack",
        planarconfig="contig" if rgb else None,
    )
    px = layout.pixel_size_um
    with tifffile.TiffWriter(out_path, bigtiff=True, ome=True) as tif:
        for k in range(n_levels):
            arr = zarr_stack.open_level(stack_path, k)
            _, planes, h, w = arr.shape
            shape = (planes, h, w, 3) if rgb else (planes, h, w)
            extra: dict = {}
            if px:
                extra = dict(resolution=(1e4 / (px * 2**k), 1e4 / (px * 2**k)), resolutionunit="CENTIMETER")
            if k == 0:
                tif.write(
                    _tiles(arr, tile),
                    shape=shape,
                    subifds=n_levels - 1,
                    metadata=ome_metadata(layout, uuid),
                    software="mfpi-deploy",
                    **options,
                    **extra,
                )
            else:
                tif.write(_tiles(arr, tile), shape=shape, subfiletype=1, metadata=None, **options, **extra)


def ome_metadata(layout: StackLayout, uuid: str | None = None) -> dict:
    """tifffile OME metadata: axes, physical sizes (µm), plane z positions, channel names, UUID."""
    if uuid is None:
        blob = json.dumps(layout.to_dict(), sort_keys=True)
        uuid = str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, "mfpi-deploy:layout:" + blob))
    meta: dict = {
        "UUID": f"urn:uuid:{uuid}",
        "axes": "ZYXS" if layout.channels == 3 else "ZYX",
        "Name": layout.name or "mfpi stack",
        "PhysicalSizeZ": abs(layout.z_spacing_um),
        "PhysicalSizeZUnit": "µm",  # the schema wants it positive
        "Plane": {"PositionZ": [float(z) for z in layout.planes_um], "PositionZUnit": ["µm"] * layout.planes},
    }
    if layout.pixel_size_um:
        meta.update(
            PhysicalSizeX=layout.pixel_size_um,
            PhysicalSizeXUnit="µm",
            PhysicalSizeY=layout.pixel_size_um,
            PhysicalSizeYUnit="µm",
        )
    return meta
