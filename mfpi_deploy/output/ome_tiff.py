"""OME-TIFF from a finished OME-Zarr stack: BigTIFF, tiled, compressed, pyramid in SubIFDs.

One page per focal plane (RGB pages for RGB stacks), OME-XML with the physical sizes and
each plane's z position. Tiles are streamed from the Zarr, so memory stays bounded.
"""
from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from mfpi_deploy.output import zarr_stack
from mfpi_deploy.output.layout import StackLayout

MAX_TIFF_TILE = 1024


def tiff_tile_size(layout: StackLayout) -> int:
    """TIFF tile side: the Zarr chunk (each TIFF tile then decodes exactly its own chunks) if it
    is at most 1024, else 512. Chunks are multiples of 16, as TIFF tiles must be."""
    return layout.chunk if layout.chunk <= MAX_TIFF_TILE and layout.chunk % 16 == 0 else 512


def _tiles(level: zarr.Array, tile: int) -> Iterator[np.ndarray]:  # noqa: F821
    channels, planes, h, w = level.shape
    for z in range(planes):
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                block = np.moveaxis(level[:, z, y:y + tile, x:x + tile], 0, -1)
                yield block if channels > 1 else block[..., 0]


def write_ome_tiff(stack_path: str | Path, out_path: str | Path, *, tile: int | None = None,
                   compression: str = "zlib", levels: int | None = None, uuid: str | None = None) -> None:
    """Write `out_path` from the OME-Zarr at `stack_path` (all its pyramid levels).

    The file's bytes depend only on the stack and the arguments: give `uuid` (the OME UUID)
    for that; without it, one is derived from the stack's layout. No timestamps are written.
    """
    layout = zarr_stack.read_layout(stack_path)
    tile = tile or tiff_tile_size(layout)
    n_levels = levels or zarr_stack.level_count(stack_path)
    rgb = layout.channels == 3
    options = dict(
        tile=(tile, tile), compression=compression, dtype=np.uint8,
        photometric="rgb" if rgb else "minisblack", planarconfig="contig" if rgb else None,
    )
    px = layout.pixel_size_um
    with tifffile.TiffWriter(out_path, bigtiff=True, ome=True) as tif:
        for k in range(n_levels):
            arr = zarr_stack.open_level(stack_path, k)
            _, planes, h, w = arr.shape
            shape = (planes, h, w, 3) if rgb else (planes, h, w)
            extra: dict = {}
            if px:
                extra = dict(resolution=(1e4 / (px * 2 ** k), 1e4 / (px * 2 ** k)), resolutionunit="CENTIMETER")
            if k == 0:
                tif.write(_tiles(arr, tile), shape=shape, subifds=n_levels - 1,
                          metadata=ome_metadata(layout, uuid), software="mfpi-deploy", **options, **extra)
            else:
                tif.write(_tiles(arr, tile), shape=shape, subfiletype=1, metadata=None, **options, **extra)


def ome_metadata(layout: StackLayout, uuid: str | None = None) -> dict:
    """tifffile OME metadata: axes, physical sizes (µm), plane z positions, channel names, UUID."""
    if uuid is None:
        uuid = str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, "mfpi-deploy:layout:" + json.dumps(layout.to_dict(), sort_keys=True)))
    meta: dict = {
        "UUID": f"urn:uuid:{uuid}",
        "axes": "ZYXS" if layout.channels == 3 else "ZYX",
        "Name": layout.name or "mfpi stack",
        "PhysicalSizeZ": layout.z_spacing_um, "PhysicalSizeZUnit": "µm",
        "Plane": {"PositionZ": [float(z) for z in layout.planes_um],
                  "PositionZUnit": ["µm"] * layout.planes},
    }
    if layout.pixel_size_um:
        meta.update(PhysicalSizeX=layout.pixel_size_um, PhysicalSizeXUnit="µm",
                    PhysicalSizeY=layout.pixel_size_um, PhysicalSizeYUnit="µm")
    return meta
