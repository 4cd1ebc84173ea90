"""run.plan: the codec a run chooses from the output format and the options, and the tiles for its engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.backends.base import BackendKind, EngineFacts
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.run import RunOptions
from mfpi_deploy.run.plan import choose_codec, plan_run
from mfpi_deploy.tiling import TileProfile


def test_the_named_codec_without_a_level_is_the_default_itself() -> None:
    default = choose_codec(OutputFormat.OME_TIFF, RunOptions())
    assert default.label == "jpeg:85"  # README's default, measured in benchmarks/run/results/codecs.md
    assert choose_codec(OutputFormat.OME_TIFF, RunOptions(compression="jpeg")) == default
    assert choose_codec(OutputFormat.OME_TIFF, RunOptions(lossless=True)).lossless
    assert choose_codec(OutputFormat.OME_ZARR, RunOptions()).label == "zstd:3"
    with pytest.raises(MfpiError, match="--lossless contradicts --compression jpeg:85"):
        RunOptions(compression="jpeg", lossless=True)  # refused with the options, before any slide or engine


def test_the_plan_takes_wide_cores_only_for_an_engine_that_keeps_no_host_cores(tmp_path: Path) -> None:
    """plan_run passes the engine's host cores to choose_plan: 1280 px cores (256 px output tiles)
    for a CPU engine, 1024 px cores (512 px tiles) for a device engine, on an 8192^2 slide."""
    slide = tmp_path / "big.tif"
    block = np.full((1024, 1024, 3), 128, np.uint8)
    tifffile.imwrite(
        slide, iter([block] * 64), shape=(8192, 8192, 3), dtype=np.uint8, tile=(1024, 1024), compression="zlib"
    )
    profile = TileProfile(opt_tile=384, opt_batch=4)  # the bundled model's ONNX profile
    spec = EngineSpec("mfpinet", 3, 11, 2, 8, tuple(float(z) for z in range(11)), (profile,))
    chosen = {}
    for cores in (2, 0):
        facts = EngineFacts(BackendKind.ORT_CPU, spec, "stand-in", host_cores=cores)
        run = plan_run(slide, tmp_path / "out.ome.tif", facts, RunOptions(log=lambda message: None))
        chosen[cores] = (run.plan.tile, run.grid.tile, run.grid.direct)
    assert chosen == {2: (736, 256, 0), 0: (608, 512, 1)}
