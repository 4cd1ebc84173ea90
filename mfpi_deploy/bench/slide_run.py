"""Pipeline mode: the same MFPINet engine inside `run_slide` on a generated slide.

Efficiency compares the pipeline's engine throughput (output voxels of every computed tile,
halos included, per second of the tile loop where reading, inference and writing overlap)
with the bare engine's throughput at the same tile and batch. Halo overhead (output thrown
away at tile borders) is reported apart, since it is a tiling choice, not pipeline overhead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.bench.timing import repeat_timed
from mfpi_deploy.errors import MfpiError

TILES_PER_SIDE = 4


def pipeline_halo(tile: int, default: int, stride: int = 8) -> int:
    """The run's default halo, shrunk for small (test/quick) tiles so at least half the tile is core."""
    halo = default
    while halo > 0 and tile - 2 * halo < tile // 2:
        halo -= stride
    return max(halo, 0)


def write_test_slide(path: Path, side: int, channels: int, seed: int = 0) -> Path:
    """A tiled uint8 TIFF of side x side pixels with tissue-like smooth texture (content does not change timing)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((side // 16 + 2, side // 16 + 2, channels))
    image = np.kron(coarse, np.ones((16, 16, 1)))[:side, :side]
    image = 0.8 * image + 0.2 * rng.random(image.shape)
    data = (image * 255).round().astype(np.uint8)
    if channels == 1:
        data = data[..., 0]
    tifffile.imwrite(path, data, photometric="rgb" if channels == 3 else "minisblack", tile=(64, 64))
    return path


@dataclass(frozen=True)
class PipelineMeasurement:
    """What one run_slide call did, in numbers the report needs."""

    slide_side: int
    tile: int
    halo: int
    batch: int
    tiles: int
    computed_output_voxels: int  # every tile's full output, halos included
    useful_output_voxels: int  # the slide's output stack
    loop_seconds: float
    total_seconds: float
    bare_seconds: list[float]  # single batches of the bare engine, timed just before and after

    @property
    def bare_megavoxels_per_s(self) -> float:
        per_batch = self.computed_output_voxels / self.tiles * self.batch
        return per_batch / float(np.median(self.bare_seconds)) / 1e6


def measure_pipeline(backend: Backend, tile: int, batch: int, work_dir: Path,
                     log: Callable[[str], None] = print, bare_runs: int = 3) -> PipelineMeasurement:
    """Run `backend` (an MFPINet engine) over a generated slide of 4 x 4 tile cores with run_slide.

    The bare engine is timed on `bare_runs` batches of the same shape just before and just
    after, so both sides of the efficiency see the same machine load.
    """
    try:
        from mfpi_deploy.run import RunOptions, run_slide
        from mfpi_deploy.tiling import DEFAULT_HALO
    except ImportError:
        raise MfpiError("pipeline mode needs the run module (mfpi_deploy.run), not in this build") from None
    spec = backend.spec
    halo = pipeline_halo(tile, DEFAULT_HALO, spec.stride)
    side = TILES_PER_SIDE * (tile - 2 * halo)
    slide = write_test_slide(work_dir / f"bench-slide-{side}.tif", side, spec.channels)
    out = work_dir / f"bench-slide-{side}.ome.zarr"
    options = RunOptions(tile=tile, batch=batch, halo=halo, overwrite=True, progress=False, log=log,
                         pixel_size_um=0.5)
    tiles = np.random.default_rng(0).integers(0, 256, (batch, tile, tile, spec.channels), dtype=np.uint8)
    bare = repeat_timed(lambda: backend.run(tiles), bare_runs, 0)
    summary = run_slide(slide, out, backend, options)
    bare += repeat_timed(lambda: backend.run(tiles), bare_runs, 0)
    per_tile = spec.planes * (spec.scale * tile) ** 2
    return PipelineMeasurement(
        slide_side=side, tile=summary.tile, halo=summary.halo, batch=summary.batch, tiles=summary.tiles_computed,
        computed_output_voxels=summary.tiles_computed * per_tile,
        useful_output_voxels=spec.planes * (spec.scale * side) ** 2,
        loop_seconds=summary.inference_seconds, total_seconds=summary.seconds, bare_seconds=bare,
    )
