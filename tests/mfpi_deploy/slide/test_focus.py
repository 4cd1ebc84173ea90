from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide.focus import binned, central_block, sharpest_plane, sharpness
from tests.mfpi_deploy.run.helpers import focal_stack


@pytest.mark.parametrize("sharp", [0, 2, 4])
def test_sharpest_plane_finds_the_plane_in_focus(sharp: int) -> None:
    stack = focal_stack(64, 80, planes=5, sharp=sharp)
    assert sharpest_plane(list(stack)) == sharp
    assert sharpest_plane(list(stack[..., 0]), k=1) == sharp  # grey, unbinned


def test_sharpness_and_binning() -> None:
    flat = np.full((16, 16), 7, np.uint8)
    assert sharpness(flat) == 0.0 and sharpness(focal_stack(16, 16, 1, 0)[0]) > 0
    rgb = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    out = binned(rgb, 2)
    grey = rgb.astype(np.float32).mean(-1)
    assert out.shape == (2, 3) and out[1, 2] == pytest.approx(grey[2:4, 4:6].mean())
    assert sharpest_plane([flat, flat]) == 0  # equals: the first
    with pytest.raises(ValueError):
        sharpest_plane([])


def test_small_planes_are_measured_unbinned_and_too_small_ones_refused() -> None:
    stack = focal_stack(4, 5, planes=3, sharp=1)  # binned 2x2 it would be 2x2: no Laplacian left
    assert sharpest_plane(list(stack)) == sharpest_plane(list(stack), k=1)
    with pytest.raises(MfpiError, match="a 2x5 px region is too small to measure focus on"):
        sharpest_plane([p[:2] for p in stack])


def test_central_block() -> None:
    assert central_block(3000, 100, side=1024) == (988, 2012, 0, 100)
    assert central_block(10, 11, side=4) == (3, 7, 3, 7)
