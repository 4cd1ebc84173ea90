"""Fixtures of the run tests that read one small run's output in several ways (codecs, readers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfpi_deploy.run import RunOptions, run_slide
from tests.mfpi_deploy.run.helpers import SMALL_RUN, textured, tiny_backend, write_tiff


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, Path]:
    """A 200x232 slide at 0.5 µm, a tiny torch engine, and the slide's lossless run (OME-Zarr, uncompressed)."""
    root = tmp_path_factory.mktemp("codecs")
    backend = tiny_backend(root, width=4)
    src = write_tiff(root / "a.tif", textured(200, 232), tile=(64, 64), compression="zlib")
    reference = root / "ref.ome.zarr"
    run_slide(src, reference, backend, RunOptions(compression="none", **SMALL_RUN))
    return src, backend, reference
