"""DZI tile -> engine tiles: the cores a box overlaps, and the box put together from them equals
the same box of the whole tiled output (crop-only stitching)."""

from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.output.pyramid import downsample2
from mfpi_deploy.serve.mapping import assemble, engine_box, engine_tiles_over, reduce
from mfpi_deploy.tiling import Box, TilePlan

PLAN = TilePlan(height=300, width=200, tile=96, halo=16)  # core 64 input px -> 128 output px at 2x
SCALE = 2


def test_engine_tiles_over_a_box() -> None:
    assert (PLAN.rows, PLAN.cols) == (5, 4)
    assert engine_tiles_over(PLAN, SCALE, Box(0, 0, 128, 128)) == [0]
    assert engine_tiles_over(PLAN, SCALE, Box(0, 0, 129, 129)) == [0, 1, 4, 5]
    assert engine_tiles_over(PLAN, SCALE, Box(127, 127, 128, 128)) == [0]
    assert engine_tiles_over(PLAN, SCALE, Box(590, 390, 600, 400)) == [19]
    assert engine_tiles_over(PLAN, SCALE, Box(0, 0, 0, 10)) == []
    assert engine_box(PLAN, SCALE, 19) == Box(512, 384, 600, 400)  # the last core is clipped to the image


@pytest.mark.parametrize("box", [Box(0, 0, 256, 256), Box(100, 37, 333, 400), Box(512, 256, 600, 400)])
def test_assemble_equals_the_whole_output(box: Box) -> None:
    rng = np.random.default_rng(1)
    whole = rng.integers(0, 256, (11, 600, 400, 3), dtype=np.uint8)
    cores = {}
    for i in range(PLAN.n_tiles):
        eb = engine_box(PLAN, SCALE, i)
        cores[i] = whole[:, eb.y0 : eb.y1, eb.x0 : eb.x1]
    got = assemble(PLAN, SCALE, box, cores, [2, 7])
    assert np.array_equal(got, whole[[2, 7], box.y0 : box.y1, box.x0 : box.x1])


def test_reduce_is_the_pyramid_of_an_aligned_box() -> None:
    rng = np.random.default_rng(2)
    whole = rng.integers(0, 256, (1, 300, 202, 3), dtype=np.uint8)
    level2 = downsample2(downsample2(whole))
    assert np.array_equal(reduce(whole[:, 64:300, 128:202], 4), level2[:, 16:, 32:])
    assert np.array_equal(reduce(whole, 1), whole)
