"""A sample slide for trying mfpi-run: the simulator's in-focus plane, degraded as the model's
input (bicubic /2 then 5x5 Gaussian blur), saved as a pyramidal OME-TIFF with its pixel size.

The slide is made and written in bands of windows (`mfpi_deploy.synth.tiled`): each window
of the input is degraded from the simulated truth around it (with a margin wider than the
degradation's reach, so windows join without seams), and level 0 goes to the file band by
band. Memory is bounded by one window's simulation plus the pyramid's lower levels (a third
of the slide's pixels), not by the slide: `--sample-size 4096` peaks well under 2 GB.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from mfpi_deploy.backends.torch_backend import torch_threads
from mfpi_deploy.degrade import degrade_uint8
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.synth import SimConfig, plane_positions_um
from mfpi_deploy.synth.tiled import TiledSimulation, Window

BAND = 512  # sample pixels: side of the windows simulated at once (1024 truth pixels)
MARGIN = 16  # truth pixels around a window: more than bicubic /2 (4) plus the 5x5 blur (4) reach
TIFF_TILE = 256
MAX_SAMPLE_SIZE = 65536


@dataclass(frozen=True)
class Sample:
    """The sample slide and, for comparison, the simulated ground-truth stack it came from."""

    image: np.ndarray  # uint8 (size, size, 3): what mfpi-run takes
    truth: np.ndarray  # uint8 (planes, 2 size, 2 size, 3): the simulated full-resolution stack
    pixel_size_um: float  # of `image` (twice the simulation's)
    planes_um: list[float]


def _config(size: int, seed: int) -> SimConfig:
    if not isinstance(size, int) or size < 16 or size % 8 or size > MAX_SAMPLE_SIZE:
        raise MfpiError(f"--sample-size must be a multiple of 8 from 16 to {MAX_SAMPLE_SIZE}, got {size}")
    return SimConfig(height=2 * size, width=2 * size, seed=seed)


def sample_bands(size: int = 1024, seed: int = 0) -> Iterator[np.ndarray]:
    """The sample slide (uint8 (size, size, 3)) in bands of BAND rows, top to bottom."""
    cfg = _config(size, seed)
    focus = plane_positions_um(cfg.planes, cfg.z_step_um)[cfg.planes // 2]
    sim = TiledSimulation(cfg, planes_um=[focus])
    side = min(BAND, size)
    for sy in range(0, size, BAND):
        yield np.concatenate([_degraded_window(sim, size, side, sy, sx) for sx in range(0, size, BAND)], axis=1)


def _degraded_window(sim: TiledSimulation, size: int, side: int, sy: int, sx: int) -> np.ndarray:
    """Input pixels [sy, sy + side) x [sx, sx + side), degraded from the in-focus truth around them.

    Every window simulates the same size (the blur's transfer functions are computed once);
    the truth is cut to the slide before degrading, so the slide's edges are treated as in a
    whole-slide pass and interior window edges lie in the margin, which is thrown away.
    """
    win = Window(2 * sy - MARGIN, 2 * sx - MARGIN, 2 * (sy + side) + MARGIN, 2 * (sx + side) + MARGIN)
    ty0, tx0 = max(win.y0, 0), max(win.x0, 0)
    ty1, tx1 = min(win.y1, 2 * size), min(win.x1, 2 * size)
    truth = sim.render(win)[0][ty0 - win.y0 : ty1 - win.y0, tx0 - win.x0 : tx1 - win.x0]
    with torch_threads(1):  # small tensors: a second thread only adds waits (the simulator is serial too)
        small = degrade_uint8(truth)
    sy1, sx1 = min(sy + side, size), min(sx + side, size)
    oy, ox = (2 * sy - ty0) // 2, (2 * sx - tx0) // 2
    return small[oy : oy + sy1 - sy, ox : ox + sx1 - sx]


def make_sample(size: int = 1024, seed: int = 0) -> Sample:
    """The sample slide in memory, with the simulated (2 size)^2 truth stack it was degraded from."""
    cfg = _config(size, seed)
    image = np.concatenate(list(sample_bands(size, seed)), axis=0)
    sim = TiledSimulation(cfg)
    truth = np.empty((cfg.planes, 2 * size, 2 * size, 3), np.uint8)
    side = min(BAND, 2 * size)  # windows of one size (the blur's transfer functions are computed once)
    for y in range(0, 2 * size, side):
        for x in range(0, 2 * size, side):
            h, w = min(side, 2 * size - y), min(side, 2 * size - x)
            truth[:, y : y + h, x : x + w] = sim.render(Window(y, x, y + side, x + side))[:, :h, :w]
    return Sample(image, truth, 2 * cfg.pixel_size_um, plane_positions_um(cfg.planes, cfg.z_step_um))


def write_sample(path: str | Path, size: int = 1024, seed: int = 0, *, overwrite: bool = False) -> str:
    """Write the sample slide as a tiled, pyramidal RGB OME-TIFF; returns a one-line description."""
    path = Path(path)
    if not path.name.lower().endswith((".tif", ".tiff")):
        raise MfpiError(f"{path}: the sample slide is an OME-TIFF; give it a .tif or .tiff name")
    cfg = _config(size, seed)
    if path.exists() and not overwrite:
        raise MfpiError(f"{path} exists; pass --overwrite to replace it")
    pixel_size = 2 * cfg.pixel_size_um
    write_pyramidal_rgb_bands(
        path,
        sample_bands(size, seed),
        size,
        size,
        pixel_size,
        uuid_text=str(uuid.uuid5(uuid.NAMESPACE_URL, f"mfpi-deploy:sample:{size}:{seed}")),
    )
    return f"{size}x{size} RGB, {pixel_size:.3f} µm/px, simulated cytology (seed {seed})"


def write_pyramidal_rgb(path: Path, image: np.ndarray, pixel_size_um: float) -> None:
    """A tiled OME-TIFF of an image in memory, with 2x sub-resolutions in SubIFDs."""
    h, w = image.shape[:2]
    write_pyramidal_rgb_bands(path, (image[y : y + BAND] for y in range(0, h, BAND)), h, w, pixel_size_um)


def write_pyramidal_rgb_bands(
    path: Path,
    bands: Iterable[np.ndarray],
    height: int,
    width: int,
    pixel_size_um: float,
    *,
    uuid_text: str | None = None,
) -> None:
    """A tiled OME-TIFF with 2x sub-resolutions in SubIFDs (each level every other pixel of
    the one above, until the longer side is at most 512), written to a temporary name first.

    Level 0 is written from `bands` (uint8 (rows, width, 3), top to bottom, any heights) one
    strip of TIFF_TILE rows at a time; only the lower levels are kept in memory.
    """
    shapes = [(height, width)]
    while max(shapes[-1]) > 512:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    lower = [np.empty((h, w, 3), np.uint8) for h, w in shapes[1:]]
    tmp = path.with_name(f".{path.name}.tmp")
    meta = {
        "axes": "YXS",
        "PhysicalSizeX": pixel_size_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel_size_um,
        "PhysicalSizeYUnit": "µm",
    }
    if uuid_text:
        meta["UUID"] = f"urn:uuid:{uuid_text}"
    opts = dict(photometric="rgb", tile=(TIFF_TILE, TIFF_TILE), compression="zlib")

    def strips() -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) of TIFF_TILE rows each (the last may be shorter), from bands of any height."""
        y, pending = 0, []
        for band in bands:
            if band.shape[1:] != (width, 3):
                raise ValueError(f"band of shape {band.shape} does not fit a {width}-wide RGB image")
            pending.append(band)
            rows = sum(len(b) for b in pending)
            while rows >= TIFF_TILE:
                block = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield y, block[:TIFF_TILE]
                y, pending, rows = y + TIFF_TILE, [block[TIFF_TILE:]], rows - TIFF_TILE
        if pending and sum(len(b) for b in pending):
            yield y, np.concatenate(pending)
            y += sum(len(b) for b in pending)
        if y != height:
            raise ValueError(f"bands cover {y} rows of {height}")

    def level0_tiles() -> Iterator[np.ndarray]:
        for y, strip in strips():
            for k, level in enumerate(lower, start=1):  # keep every 2^k-th row and column
                step = 2**k
                first = -y % step
                level[(y + first) // step : (y + len(strip) + step - 1) // step] = strip[first::step, ::step]
            for tx in range(0, width, TIFF_TILE):
                yield strip[:, tx : tx + TIFF_TILE]

    try:
        with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
            tif.write(
                level0_tiles(), shape=(height, width, 3), dtype=np.uint8, subifds=len(lower), metadata=meta, **opts
            )
            for level in lower:
                tif.write(level, subfiletype=1, **opts)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
