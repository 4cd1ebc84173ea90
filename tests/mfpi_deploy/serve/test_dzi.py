"""Deep Zoom geometry against the DZI convention: level sizes halve rounding up, tiles cover
each level exactly once (overlap aside), and the descriptor says what the tiles are."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.pyramid import level_shapes
from mfpi_deploy.serve.dzi import DziGeometry, full_resolution_box
from mfpi_deploy.tiling import Box


def test_levels_halve_rounding_up_down_to_one_pixel() -> None:
    g = DziGeometry(1000, 600)
    assert g.max_level == 10  # 2**10 = 1024 >= 1000 > 512
    assert g.level_shape(10) == (600, 1000)
    assert g.level_shape(9) == (300, 500)
    assert g.level_shape(8) == (150, 250)
    assert g.level_shape(7) == (75, 125)
    assert g.level_shape(6) == (38, 63)
    assert g.level_shape(0) == (1, 1)
    assert DziGeometry(1, 1).max_level == 0
    assert DziGeometry(1024, 3).max_level == 10 and DziGeometry(1025, 3).max_level == 11


def test_dzi_levels_are_the_output_pyramid_levels() -> None:
    """DZI level max-k of an output has the shape of mfpi-run's pyramid level k (same halving)."""
    g = DziGeometry(2050, 1234)
    for k, shape in enumerate(level_shapes(1234, 2050)):
        assert g.level_shape(g.max_level - k) == shape


@pytest.mark.parametrize("overlap", [0, 1, 3])
def test_tiles_cover_every_level_exactly_once_without_overlap(overlap: int) -> None:
    g = DziGeometry(777, 333, tile=128, overlap=overlap)
    for level in range(g.levels):
        h, w = g.level_shape(level)
        rows, cols = g.grid(level)
        covered = np.zeros((h, w), np.int32)
        for r in range(rows):
            for c in range(cols):
                box = g.tile_box(level, c, r)
                # the overlap lies only on sides that have a neighbour
                assert box.y0 == max(0, r * 128 - overlap) and box.x0 == max(0, c * 128 - overlap)
                assert box.y1 == min(h, (r + 1) * 128 + overlap) and box.x1 == min(w, (c + 1) * 128 + overlap)
                inner = Box(r * 128, c * 128, min(h, (r + 1) * 128), min(w, (c + 1) * 128))
                covered[inner.y0 : inner.y1, inner.x0 : inner.x1] += 1
        assert (covered == 1).all()


def test_bad_levels_and_tiles_are_refused_in_one_line() -> None:
    g = DziGeometry(300, 200, tile=256)
    with pytest.raises(MfpiError, match=r"level 10 does not exist \(levels 0..9\)"):
        g.tile_box(10, 0, 0)
    with pytest.raises(MfpiError, match="tile 2_0 does not exist at level 9"):
        g.tile_box(9, 2, 0)
    with pytest.raises(MfpiError):
        g.tile_box(9, -1, 0)
    with pytest.raises(MfpiError):
        DziGeometry(0, 5)
    with pytest.raises(MfpiError):
        DziGeometry(5, 5, tile=4, overlap=4)


def test_descriptor() -> None:
    root = ET.fromstring(DziGeometry(400, 600, tile=254, overlap=1).xml("png"))
    assert root.tag == "{http://schemas.microsoft.com/deepzoom/2008}Image"
    assert root.attrib == {"Format": "png", "Overlap": "1", "TileSize": "254"}
    size = root[0]
    assert size.attrib == {"Width": "400", "Height": "600"}
    with pytest.raises(MfpiError):
        DziGeometry(4, 4).xml("gif")


def test_full_resolution_box_is_clipped_to_the_image() -> None:
    assert full_resolution_box(Box(0, 64, 32, 96), 4, 100, 1000) == Box(0, 256, 100, 384)
