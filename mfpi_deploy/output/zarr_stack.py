"""The output stack as OME-Zarr (NGFF 0.4 on zarr format 2): axes c, z, y, x, a 2x pyramid.

Staged in the run's partial folder and renamed when complete. Levels an engine tile fills alone
are chunked by its block (each tile writes its chunks exactly once); the levels above by the
pyramid tile (`output.pyramid`), written whole when the builder makes them. With a lossy codec
the full-resolution chunks are encoded here, under the fidelity rule of OME-TIFF tiles
(`codecs.encode_planes`), and their scores kept beside the stack for the run's report.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import numcodecs
import numpy as np
import zarr

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import fsync_path, write_durable
from mfpi_deploy.output.codecs import Codec, encode_planes, padded_tile, parse_codec, psnr_from_json, psnr_to_json
from mfpi_deploy.output.layout import StackLayout
from mfpi_deploy.output.pyramid import PyramidGrid
from mfpi_deploy.tiling import Box

NGFF_VERSION = "0.4"
_COLOURS = {1: ["FFFFFF"], 3: ["FF0000", "00FF00", "0000FF"]}
_NAMES = {1: ["grey"], 3: ["R", "G", "B"]}


def compressor(codec: Codec | None = None) -> numcodecs.abc.Codec | None:
    """The Zarr compressor of a codec (default zstd, lossless); JPEG through imagecodecs' numcodecs."""
    codec = codec or parse_codec("zstd")
    if codec.name == "zstd":
        # Blosc (what NGFF readers expect): clevel 3 gave 5.1:1 at 290 MB/s a core on output planes, 5 only
        # 5.7:1 at 110 MB/s; Blosc's own threads stay off in writer threads (numcodecs' default there).
        return numcodecs.Blosc(cname="zstd", clevel=min(codec.level or 3, 9), shuffle=numcodecs.Blosc.NOSHUFFLE)
    if codec.name == "zlib":
        return numcodecs.Zlib(level=codec.level)
    if codec.name == "none":
        return None
    if codec.name == "jpeg":
        register_codecs()
        from imagecodecs.numcodecs import Jpeg

        return Jpeg(level=codec.level)
    raise MfpiError(f"compression {codec.name} is not available for OME-Zarr (use zstd, zlib, jpeg or none)")


def register_codecs() -> None:
    """Make imagecodecs' numcodecs codecs (JPEG chunks) readable by zarr in this process, quietly
    (imagecodecs prints a line for every codec already registered unless told not to)."""
    from imagecodecs.numcodecs import register_codecs as register

    register(verbose=False)


def level_chunks(grid: PyramidGrid) -> list[int]:
    """Chunk side of every level: an engine tile's block at levels 0..direct, the pyramid tile above."""
    return [grid.core // 2**k if k <= grid.direct else grid.tile for k in range(grid.levels)]


def create_stack(path: str | Path, layout: StackLayout, grid: PyramidGrid, codec: Codec | None = None) -> None:
    """Create the group and all its level arrays (empty chunks read as 0), with the NGFF attributes."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    for k, ((h, w), chunk) in enumerate(zip(grid.shapes, level_chunks(grid))):
        group.create_array(
            str(k),
            shape=(layout.channels, layout.planes, h, w),
            chunks=(1, 1, chunk, chunk),
            dtype="uint8",
            fill_value=0,
            compressors=compressor(codec),
            chunk_key_encoding={"name": "v2", "separator": "/"},
            overwrite=True,
        )
    group.attrs.update(ngff_attrs(layout, grid.levels))


def open_level(path: str | Path, level: int = 0, mode: str = "r") -> zarr.Array:
    register_codecs()
    return zarr.open_array(str(Path(path) / str(level)), mode=mode, zarr_format=2)


class ChunkScore(NamedTuple):
    """How one checked full-resolution chunk was encoded (what CodecReport.of reads)."""

    level: int | None
    psnr_db: float | None
    met_floor: bool


class ZarrSink:
    """Pyramid sink writing whole chunks of the staged OME-Zarr, synced to disk before returning.

    With a lossy `codec` and a `floor_db`, full-resolution chunks are encoded here and checked as
    OME-TIFF tiles are (the checked planes of a chunk position climb the quality ladder until
    they reach the floor, the other planes follow them); every chunk is stored as zarr stores
    it, so any reader with the codec decodes it (a JPEG chunk says its own quality). The scores
    of each engine tile go to `scores`/e<index>.json (`read_scores`).
    """

    def __init__(
        self,
        path: str | Path,
        grid: PyramidGrid,
        codec: Codec | None = None,
        floor_db: float | None = None,
        scores: str | Path | None = None,
    ) -> None:
        self.path, self.grid = Path(path), grid
        # every chunk is written, blank ones too: zarr's test for all-fill chunks cost more than writing them
        self.arrays = [
            open_level(path, k, mode="r+").with_config({"write_empty_chunks": True}) for k in range(grid.levels)
        ]
        self.chunks = level_chunks(grid)
        self.codec = codec or parse_codec("zstd")
        self.floor_db = None if self.codec.lossless else floor_db
        if self.floor_db is not None and scores is None:
            raise ValueError("a checked lossy sink needs a folder for its scores")
        self.scores = Path(scores) if scores is not None else None

    def put_engine_tile(self, index: int, blocks: list[tuple[int, Box, np.ndarray]]) -> None:
        for level, box, planes in blocks:
            if level == 0 and self.floor_db is not None:
                self._put_checked(index, box, planes)
            else:
                self._put(level, box, planes)

    def _put_checked(self, index: int, box: Box, planes: np.ndarray) -> None:
        """Level-0 chunks of `box` encoded and scored here (zarr's chunk layout: c/z/y/x, edge
        chunks padded to the chunk shape as zarr pads them), then this engine tile's scores."""
        assert self.scores is not None and self.floor_db is not None
        chunk = self.chunks[0]
        height, width = self.arrays[0].shape[2:]
        rows: list[list] = []
        folders = set()
        for cy in range(box.y0 // chunk, -(-box.y1 // chunk)):
            for cx in range(box.x0 // chunk, -(-box.x1 // chunk)):
                cb = Box(cy * chunk, cx * chunk, min((cy + 1) * chunk, height), min((cx + 1) * chunk, width))
                part = planes[:, cb.y0 - box.y0 : cb.y1 - box.y0, cb.x0 - box.x0 : cb.x1 - box.x0]
                for c in range(planes.shape[-1]):  # a chunk holds one channel (a copy: encoders take contiguous)
                    tiles = [padded_tile(part[z, ..., c : c + 1], chunk) for z in range(planes.shape[0])]
                    encoded = encode_planes(self.codec, tiles, (cb.height, cb.width), self.floor_db)
                    for z, enc in enumerate(encoded):
                        path = self.path / "0" / str(c) / str(z) / str(cy) / str(cx)
                        write_durable(path, enc.data)
                        folders.add(path.parent)
                        rows.append([c, z, cy, cx, enc.level, psnr_to_json(enc.psnr_db), enc.met_floor])
        for folder in folders:
            fsync_path(folder.parent)  # the plane folders hold the row folders write_durable may have made
        write_durable(self.scores / f"e{index}.json", json.dumps(rows, separators=(",", ":")))

    def put_tile(self, level: int, row: int, col: int, planes: np.ndarray) -> None:
        self._put(level, self.grid.tile_box(level, row, col), planes)

    def _put(self, level: int, box: Box, planes: np.ndarray) -> None:
        self.arrays[level][:, :, box.y0 : box.y1, box.x0 : box.x1] = np.moveaxis(planes, -1, 0)
        chunk = self.chunks[level]
        channels, planes_n = self.arrays[level].shape[:2]
        folders = set()
        for c in range(channels):
            for z in range(planes_n):
                for cy in range(box.y0 // chunk, -(-box.y1 // chunk)):
                    for cx in range(box.x0 // chunk, -(-box.x1 // chunk)):
                        path = self.path / str(level) / str(c) / str(z) / str(cy) / str(cx)
                        fsync_path(path)
                        folders.add(path.parent)
        for folder in folders:
            fsync_path(folder)


def read_scores(folder: str | Path) -> list[ChunkScore]:
    """The scores of every checked chunk a sink wrote to `folder` (none if it has none)."""
    scores = []
    for path in sorted(Path(folder).glob("e*.json")):
        for _c, _z, _cy, _cx, level, psnr, met in json.loads(path.read_text()):
            scores.append(ChunkScore(level, psnr_from_json(psnr), met))
    return scores


# zarr's LocalStore writes a chunk as <key>.<uuid hex>.partial, then renames it to <key>; chunks
# encoded here are written as .<key>.<hex>.tmp (fileio.write_atomic)
_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.partial$|^\..*\.[0-9a-f]{8}\.tmp$")


def remove_temporaries(path: str | Path) -> int:
    """Delete chunk files a killed writer left half-written under their temporary names; returns how many."""
    removed = 0
    for folder, _, files in os.walk(path):
        for name in files:
            if _TEMPORARY.search(name):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def ngff_attrs(layout: StackLayout, levels: int) -> dict:
    """NGFF 0.4 `multiscales` (physical sizes) and `omero` (channel colours) attributes."""
    unit = {"unit": "micrometer"} if layout.pixel_size_um else {}
    px = layout.pixel_size_um or 1.0
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", **({} if layout.z_in_steps else {"unit": "micrometer"})},  # steps: no unit
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


def is_stack(path: str | Path) -> bool:
    """True if `path` is a stack this package wrote (an OME-Zarr group with its layout record)."""
    try:
        read_layout(path)
    except Exception:  # not zarr, not a group, no record: zarr and json raise their own types
        return False
    return True


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
