"""OME-TIFF in the layout Bio-Formats (QuPath, Fiji) reads best, encoded once.

Each tile is encoded once, as its engine tile finishes, into a packet file of the staging folder
(`TiffTileStore`, a pyramid sink); the finished file is then assembled by copying those bytes
(`assemble_ome_tiff`): BigTIFF, one tiled IFD per focal plane (RGB pages for RGB stacks), the 2x
pyramid in each plane's SubIFDs, and OME-XML that validates against the OME schema (SizeZ,
physical sizes with units, each plane's PositionZ).
"""

from __future__ import annotations

import json
import os
import struct
import uuid as uuid_module
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile

from mfpi_deploy.fileio import write_durable
from mfpi_deploy.output.codecs import (
    Codec,
    TileEncoder,
    encode_planes,
    encode_tiff_tiles,
    padded_tile,
    psnr_from_json,
    psnr_to_json,
    tiff_options,
)
from mfpi_deploy.output.layout import StackLayout
from mfpi_deploy.output.pyramid import PyramidGrid
from mfpi_deploy.tiffmeta import STEP_UNIT
from mfpi_deploy.tiling import Box

_MAGIC = b"MFPK1\n"
_KEY = tuple[int, int, int, int]  # level, z, row, col


class TileEntry(NamedTuple):
    """Where one encoded tile's bytes are, and how it was encoded (a named tuple: a 16384^2 run's
    index holds 240,000 of them, made a third faster than frozen dataclasses)."""

    path: Path
    offset: int
    length: int
    level: int | None  # codec level it was encoded at (a lossy tile may have been raised)
    psnr_db: float | None  # against the lossless tile (lossy codecs); None: lossless
    met_floor: bool


class TiffTileStore:
    """Encoded TIFF tiles in packet files: one per engine tile (its levels 0..direct) and one per upper tile.

    `encoder` encodes the tiles (default: on the CPU, byte for byte as tifffile would); another one, such as
    output/gpu_jpeg.py's, writes other bytes, so a resumed store must keep the encoder it began with.
    """

    def __init__(
        self,
        root: str | Path,
        grid: PyramidGrid,
        codec: Codec,
        floor_db: float,
        encoder: TileEncoder = encode_tiff_tiles,
    ) -> None:
        self.root, self.grid, self.codec, self.floor_db = Path(root), grid, codec, floor_db
        self.encoder = encoder

    def put_engine_tile(self, index: int, blocks: list[tuple[int, Box, np.ndarray]]) -> None:
        self._write(self.root / f"e{index}.pkt", blocks)

    def put_tile(self, level: int, row: int, col: int, planes: np.ndarray) -> None:
        self._write(self.root / f"L{level}_{row}_{col}.pkt", [(level, self.grid.tile_box(level, row, col), planes)])

    def _write(self, path: Path, blocks: list[tuple[int, Box, np.ndarray]]) -> None:
        t = self.grid.tile
        header: list[list] = []
        payload: list[bytes] = []
        offset = 0
        for level, box, planes in blocks:
            for r, c in self.grid.tiles_in(level, box):
                tb = self.grid.tile_box(level, r, c)
                ys, xs = slice(tb.y0 - box.y0, tb.y1 - box.y0), slice(tb.x0 - box.x0, tb.x1 - box.x0)
                if (tb.height, tb.width) == (t, t):  # whole tiles are encoded where they are (no copy)
                    tiles = [planes[z, ys, xs] for z in range(planes.shape[0])]
                else:  # edge tiles are padded to the TIFF tile size
                    tiles = [padded_tile(planes[z, ys, xs], t) for z in range(planes.shape[0])]
                floor = self.floor_db if level == 0 else None  # overview levels: same quality, unchecked
                for z, enc in enumerate(encode_planes(self.codec, tiles, (tb.height, tb.width), floor, self.encoder)):
                    header.append(
                        [level, z, r, c, offset, len(enc.data), enc.level, psnr_to_json(enc.psnr_db), enc.met_floor]
                    )
                    payload.append(enc.data)
                    offset += len(enc.data)
        head = json.dumps(header, separators=(",", ":")).encode()
        write_durable(path, [_MAGIC, struct.pack("<Q", len(head)), head, *payload])


def read_index(root: str | Path) -> dict[_KEY, TileEntry]:
    """Every encoded tile of a store (later packets of the same tile replace earlier ones: identical bytes)."""
    index: dict[_KEY, TileEntry] = {}
    for path in sorted(Path(root).glob("*.pkt")):
        with open(path, "rb") as f:
            if f.read(len(_MAGIC)) != _MAGIC:
                raise ValueError(f"{path}: not a tile packet")
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        start = len(_MAGIC) + 8 + size
        for level, z, r, c, offset, length, q, psnr, met in header:
            index[(level, z, r, c)] = TileEntry(path, start + offset, length, q, psnr_from_json(psnr), met)
    return index


class _Reader:
    """pread of tile bytes with a bounded set of open packet files."""

    def __init__(self, keep: int = 256) -> None:
        self.fds: OrderedDict[Path, int] = OrderedDict()
        self.keep = keep

    def read(self, entry: TileEntry) -> bytes:
        fd = self.fds.pop(entry.path, None)
        if fd is None:
            fd = os.open(entry.path, os.O_RDONLY)
            if len(self.fds) >= self.keep:
                os.close(self.fds.popitem(last=False)[1])
        self.fds[entry.path] = fd
        return os.pread(fd, entry.length, entry.offset)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def assemble_ome_tiff(
    store: str | Path, grid: PyramidGrid, layout: StackLayout, codec: Codec, out_path: str | Path, uuid: str | None
) -> dict[_KEY, TileEntry]:
    """Write the OME-TIFF from a complete store by copying its tiles' bytes; returns the index used.

    The bytes depend only on the tiles, the layout and `uuid` (no timestamps are written).
    """
    index = read_index(store)
    missing = [
        (k, z, r, c)
        for k in range(grid.levels)
        for z in range(layout.planes)
        for r in range(grid.grid(k)[0])
        for c in range(grid.grid(k)[1])
        if (k, z, r, c) not in index
    ]
    if missing:
        raise ValueError(f"{store}: {len(missing)} tile(s) were never encoded, e.g. level/z/row/col {missing[0]}")
    reader = _Reader()

    def tiles(level: int) -> Iterator[bytes]:
        rows, cols = grid.grid(level)
        for z in range(layout.planes):
            for r in range(rows):
                for c in range(cols):
                    yield reader.read(index[(level, z, r, c)])

    options = dict(tile=(grid.tile, grid.tile), **tiff_options(codec, layout.channels))
    px = layout.pixel_size_um
    try:
        with tifffile.TiffWriter(out_path, bigtiff=True, ome=True) as tif:
            for k, (h, w) in enumerate(grid.shapes):
                shape = (layout.planes, h, w, 3) if layout.channels == 3 else (layout.planes, h, w)
                extra: dict = {}
                if px:
                    extra = dict(resolution=(1e4 / (px * 2**k), 1e4 / (px * 2**k)), resolutionunit="CENTIMETER")
                if k == 0:
                    extra.update(subifds=grid.levels - 1, metadata=ome_metadata(layout, uuid), software="mfpi-deploy")
                else:
                    extra.update(subfiletype=1, metadata=None)
                tif.write(tiles(k), shape=shape, **options, **extra)
    finally:
        reader.close()
    return index


def ome_metadata(layout: StackLayout, uuid: str | None = None) -> dict:
    """tifffile OME metadata: axes, physical sizes (µm), plane z positions, channel names, UUID."""
    if uuid is None:
        blob = json.dumps(layout.to_dict(), sort_keys=True)
        uuid = str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, "mfpi-deploy:layout:" + blob))
    meta: dict = {
        "UUID": f"urn:uuid:{uuid}",
        "axes": "ZYXS" if layout.channels == 3 else "ZYX",
        "Name": layout.name or "mfpi stack",
    }
    z_unit = "µm"
    if layout.z_in_steps:  # no physical z: positions in OME's arbitrary "reference frame" unit, no PhysicalSizeZ
        z_unit = STEP_UNIT
    else:
        meta.update(PhysicalSizeZ=abs(layout.z_spacing_um), PhysicalSizeZUnit="µm")  # the schema wants it positive
    meta["Plane"] = {"PositionZ": [float(z) for z in layout.planes_um], "PositionZUnit": [z_unit] * layout.planes}
    if layout.pixel_size_um:
        meta.update(
            PhysicalSizeX=layout.pixel_size_um,
            PhysicalSizeXUnit="µm",
            PhysicalSizeY=layout.pixel_size_um,
            PhysicalSizeYUnit="µm",
        )
    return meta


__all__ = ["TiffTileStore", "assemble_ome_tiff", "ome_metadata", "read_index"]
