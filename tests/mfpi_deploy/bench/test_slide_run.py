"""Pipeline mode helpers: halo for small tiles, the generated slide."""

from __future__ import annotations

import tifffile

from mfpi_deploy.bench.runner import pipeline_halo, write_test_slide


def test_halo_is_the_default_unless_the_tile_is_small():
    assert pipeline_halo(384, 32) == 32
    assert pipeline_halo(128, 32) == 32
    assert pipeline_halo(128, 48) == 32
    assert pipeline_halo(64, 32) == 16
    assert pipeline_halo(32, 32) == 8
    assert pipeline_halo(8, 32) == 0
    for tile in (16, 32, 48, 64, 128):
        h = pipeline_halo(tile, 32)
        assert h % 8 == 0 and tile - 2 * h >= tile // 2


def test_generated_slide(tmp_path):
    for channels in (1, 3):
        path = write_test_slide(tmp_path / f"s{channels}.tif", 96, channels)
        data = tifffile.imread(path)
        assert data.shape == ((96, 96, 3) if channels == 3 else (96, 96)) and data.dtype.name == "uint8"
        assert data.std() > 10
