"""Pipeline mode: the MFPINet engine inside `run_slide` on a generated slide, against the same engine alone,
to show what the whole-slide pipeline (reading and writing overlapped with inference) costs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.bench.report import PipelineResult
from mfpi_deploy.bench.runner import timed
from mfpi_deploy.run import RunOptions, run_slide
from mfpi_deploy.tiling import DEFAULT_HALO

TILES_PER_SIDE = 4


def pipeline_halo(tile: int, default: int, stride: int = 8) -> int:
    """The run's default halo, shrunk on the stride grid for small tiles so at least half the tile is core."""
    return min(default, tile // 4 // stride * stride)


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


def measure_pipeline(
    backend: Backend, tile: int, batch: int, work_dir: Path, log: Callable[[str], None] = print, bare_runs: int = 3
) -> PipelineResult:
    """Run `backend` (an MFPINet engine) over a generated slide of 4 x 4 tile cores with run_slide.

    Engine throughput counts every computed tile's output (halos included) per second of the tile
    loop; the bare engine is timed on `bare_runs` batches of the same shape just before and just
    after, so both see the same machine load. Halo overhead is reported apart (a tiling choice).
    """
    spec = backend.spec
    halo = pipeline_halo(tile, DEFAULT_HALO, spec.stride)
    side = TILES_PER_SIDE * (tile - 2 * halo)
    slide = write_test_slide(work_dir / f"bench-slide-{side}.tif", side, spec.channels)
    options = RunOptions(tile=tile, batch=batch, halo=halo, overwrite=True, progress=False, log=log, pixel_size_um=0.5)
    tiles = np.random.default_rng(0).integers(0, 256, (batch, tile, tile, spec.channels), dtype=np.uint8)
    bare = [timed(lambda: backend.run(tiles)) for _ in range(bare_runs)]
    summary = run_slide(slide, work_dir / f"bench-slide-{side}.ome.zarr", backend, options)
    bare += [timed(lambda: backend.run(tiles)) for _ in range(bare_runs)]
    computed = summary.tiles_computed * spec.planes * (spec.scale * tile) ** 2  # output voxels, halos included
    useful = spec.planes * (spec.scale * side) ** 2
    return PipelineResult(
        backend=backend.kind.value,
        slide_side=side,
        tile=summary.tile,
        halo=summary.halo,
        batch=summary.batch,
        tiles=summary.tiles_computed,
        loop_seconds=summary.inference_seconds,
        total_seconds=summary.seconds,
        engine_megavoxels_per_s_in_pipeline=computed / summary.inference_seconds / 1e6,
        bare_engine_megavoxels_per_s=computed / summary.tiles_computed * batch / float(np.median(bare)) / 1e6,
        end_to_end_megavoxels_per_s=useful / summary.seconds / 1e6,
        halo_overhead=1.0 - useful / computed,
    )
