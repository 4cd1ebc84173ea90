"""Layer pixels in, stack placement out: the arithmetic of the napari plugin, without napari or Qt."""

from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.napari.layers import LayerError, Placement, layer_pixels, stack_layer, stack_placement, visible_box
from mfpi_deploy.tiling import Box

PLANES = [round(2.7 * i, 4) for i in range(-5, 6)]


def test_placement_z_from_planes_yx_half_and_aligned_to_input_pixels() -> None:
    scale, translate = stack_placement(Placement((0.5, 0.4), (10.0, 20.0)), PLANES, 2)
    assert scale == pytest.approx((2.7, 0.25, 0.2))
    # input pixel 0 spans 10 +- 0.25; its first output pixel is centred a quarter input step before 10
    assert translate == pytest.approx((-13.5, 10.0 - 0.125, 20.0 - 0.1))
    _, shifted = stack_placement(Placement((0.5, 0.4), (10.0, 20.0)), PLANES, 2, Box(4, 6, 20, 30))
    assert shifted == pytest.approx((-13.5, 10.0 + 4 * 0.5 - 0.125, 20.0 + 6 * 0.4 - 0.1))


def test_layer_pixels_grey_rgb_multiscale_and_region() -> None:
    grey = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    assert layer_pixels(grey, rgb=False, multiscale=False).shape == (40, 30)
    rgb = np.zeros((40, 30, 3), np.uint8)
    pyramid = [rgb, rgb[::2, ::2]]
    assert layer_pixels(pyramid, rgb=True, multiscale=True, region=Box(8, 4, 24, 20)).shape == (16, 16, 3)
    np.testing.assert_array_equal(
        layer_pixels(grey, rgb=False, multiscale=False, region=Box(1, 2, 3, 5)), grey[1:3, 2:5]
    )


@pytest.mark.parametrize(
    "data, rgb, words",
    [
        (np.zeros((5, 8, 8), np.uint8), False, "3D grey"),
        (np.zeros((8, 8), np.float32), False, "float32"),
        (np.zeros((8, 8, 2), np.uint8), True, "RGB"),
    ],
)
def test_layers_the_network_cannot_take_are_refused(data: np.ndarray, rgb: bool, words: str) -> None:
    with pytest.raises(LayerError, match=words):
        layer_pixels(data, rgb=rgb, multiscale=False)


def test_region_outside_the_layer_is_refused() -> None:
    with pytest.raises(LayerError, match="not inside"):
        layer_pixels(np.zeros((8, 8), np.uint8), rgb=False, multiscale=False, region=Box(0, 0, 9, 8))


def test_visible_box_scales_corner_pixels_of_the_shown_level_and_clamps() -> None:
    whole = Box(0, 0, 1000, 800)
    assert visible_box([[10, 20], [49, 99]], (4.0, 4.0), whole) == Box(40, 80, 200, 400)
    assert visible_box([[0, 0, 0], [0, 400, 400]], (1, 4.0, 4.0), whole) == Box(0, 0, 1000, 800)
    with pytest.raises(LayerError, match="visible"):
        visible_box([[300, 0], [400, 10]], (4.0, 4.0), whole)


def test_stack_layer_grey_drops_channel_axis_rgb_keeps_it() -> None:
    grey = np.zeros((11, 8, 6, 1), np.uint8)
    data, kwargs, kind = stack_layer(grey, PLANES, name="s", scale=(2.7, 1, 1), translate=(-13.5, 0, 0))
    assert kind == "image" and data.shape == (11, 8, 6) and kwargs["rgb"] is False
    assert kwargs["metadata"]["planes_um"] == PLANES and "units" not in kwargs
    data, kwargs, _ = stack_layer(
        np.zeros((11, 8, 6, 3), np.uint8),
        PLANES,
        name="s",
        scale=(2.7, 1, 1),
        translate=(-13.5, 0, 0),
        pixel_unit="micrometer",
    )
    assert data.shape == (11, 8, 6, 3) and kwargs["rgb"] is True and kwargs["units"] == ("micrometer",) * 3
