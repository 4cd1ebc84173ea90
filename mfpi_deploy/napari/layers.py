"""napari layers <-> arrays without Qt: a 2D image layer's pixels in, a focal stack layer out, with
its physical scale (z in µm from the model card, y/x half the input's), so the z slider walks focus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import plane_spacing_um
from mfpi_deploy.tiling import Box

PIXEL_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
LayerData = tuple[Any, dict[str, Any], str]  # napari's LayerDataTuple: (data, kwargs, layer type)


class LayerError(MfpiError):
    """An image layer the network cannot take (not 2D, not grey or RGB, not 8 or 16 bit)."""


@dataclass(frozen=True)
class Placement:
    """Where a layer sits in the world: per-axis scale and translate of its (y, x) axes."""

    scale: tuple[float, float] = (1.0, 1.0)
    translate: tuple[float, float] = (0.0, 0.0)


def full_box(data: Any, rgb: bool, multiscale: bool) -> Box:
    """The whole of a layer's level 0 as a Box, after checking that it is a 2D grey or RGB image."""
    level0 = data[0] if multiscale else data
    shape = tuple(level0.shape)
    if len(shape) != (3 if rgb else 2) or (rgb and shape[-1] not in (3, 4)):
        kind = "RGB" if rgb else "grey"
        raise LayerError(f"the layer is {len(shape)}D {kind} {shape}; MFPINet takes one 2D grey or RGB image")
    if np.dtype(level0.dtype) not in PIXEL_TYPES:
        raise LayerError(f"the layer's pixels are {np.dtype(level0.dtype).name}; MFPINet takes uint8 or uint16")
    return Box(0, 0, shape[0], shape[1])


def layer_pixels(data: Any, *, rgb: bool, multiscale: bool, region: Box | None = None) -> np.ndarray:
    """The layer's level-0 pixels (or `region` of them) as an in-memory (H, W[, C]) array."""
    whole = full_box(data, rgb, multiscale)
    box = region or whole
    if not whole.contains(box) or box.height <= 0 or box.width <= 0:
        raise LayerError(f"region {box} is not inside the layer's {whole.height}x{whole.width} pixels")
    level0 = data[0] if multiscale else data
    return np.asarray(level0[box.y0 : box.y1, box.x0 : box.x1])


def visible_box(corners: Sequence[Sequence[float]], downsample: Sequence[float], whole: Box) -> Box:
    """Level-0 pixels of a layer's visible part: napari's `corner_pixels` (in the displayed level's
    pixels; (2, ndim), last two axes y, x) times that level's downsample factors, clamped to the layer."""
    (ymin, xmin), (ymax, xmax) = (tuple(c[-2:]) for c in corners[:2])
    fy, fx = (float(f) for f in downsample[-2:])
    box = Box(
        int(np.floor(ymin * fy)), int(np.floor(xmin * fx)), int(np.ceil((ymax + 1) * fy)), int(np.ceil((xmax + 1) * fx))
    )
    box = Box(max(box.y0, whole.y0), max(box.x0, whole.x0), min(box.y1, whole.y1), min(box.x1, whole.x1))
    if box.height <= 0 or box.width <= 0:
        raise LayerError("no part of the layer is visible on the canvas")
    return box


def stack_placement(
    source: Placement, planes_um: Sequence[float], scale: int, region: Box | None = None
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(scale, translate) of the (z, y, x) stack computed from `region` of a layer at `source`.

    z: the mean plane spacing (µm or plane steps), starting at the first plane's offset. y/x: the input's scale
    divided by the network's `scale`; translated so output pixels cover exactly the input pixels
    they came from (input pixel i spans i±0.5 input steps, its first output pixel is centred at
    i - 0.5 + 0.5/scale steps).
    """
    y0, x0 = (region.y0, region.x0) if region else (0, 0)
    (sy, sx), (ty, tx) = source.scale, source.translate
    shift = 0.5 / scale - 0.5
    out_scale = (plane_spacing_um(planes_um), sy / scale, sx / scale)
    out_translate = (float(planes_um[0]), ty + (y0 + shift) * sy, tx + (x0 + shift) * sx)
    return out_scale, out_translate


def stack_kwargs(
    planes_um: Sequence[float],
    *,
    name: str,
    scale: tuple[float, float, float],
    translate: tuple[float, float, float],
    rgb: bool,
    pixel_unit: str | None = None,
    z_in_steps: bool = False,
) -> dict[str, Any]:
    """napari Image kwargs of a (Z, Y, X[, 3]) focal stack: placement, z labels, the planes' offsets
    (in µm, or plane steps for a model whose stack had no z spacing: then z has napari's unit-less "pixel")."""
    kwargs: dict[str, Any] = dict(
        name=name,
        scale=scale,
        translate=translate,
        rgb=rgb,
        axis_labels=("z", "y", "x"),
        metadata={"planes_um": [float(z) for z in planes_um], "z_in_steps": z_in_steps},
        contrast_limits=(0, 255),
    )
    if pixel_unit:
        kwargs["units"] = ("pixel" if z_in_steps else "micrometer", pixel_unit, pixel_unit)
    return kwargs


def stack_layer(
    stack: np.ndarray,
    planes_um: Sequence[float],
    *,
    name: str,
    scale: tuple[float, float, float],
    translate: tuple[float, float, float],
    pixel_unit: str | None = None,
    z_in_steps: bool = False,
) -> LayerData:
    """(data, kwargs, "image") for napari: uint8 (Z, sH, sW, C) -> (Z, Y, X) grey or (Z, Y, X, 3) RGB."""
    rgb = stack.shape[-1] == 3
    data = stack if rgb else stack[..., 0]
    return (
        data,
        stack_kwargs(
            planes_um,
            name=name,
            scale=scale,
            translate=translate,
            rgb=rgb,
            pixel_unit=pixel_unit,
            z_in_steps=z_in_steps,
        ),
        "image",
    )
