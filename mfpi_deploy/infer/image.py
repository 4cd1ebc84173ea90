"""Tiled inference of an image in memory, through exactly the reading, tiling and merging of `mfpi-run`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.infer.stream import stream_tiles
from mfpi_deploy.slide.array import ArraySlide
from mfpi_deploy.slide.pixels import pixel_rule
from mfpi_deploy.slide.source import TileSource
from mfpi_deploy.tiling import DEFAULT_HALO, Tile, batches, choose_plan

Progress = Callable[[int, int], None]


def predict_image(
    image: np.ndarray,
    backend: Backend,
    *,
    halo: int = DEFAULT_HALO,
    tile: int | None = None,
    batch: int | None = None,
    progress: Progress | None = None,
    convert_channels: bool = False,
) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (planes, sH, sW, C), tiled as `mfpi-run` tiles a slide of that image.

    Tile and batch default to the engine profile's choice (`tiling.choose_plan`), the halo to
    the measured default, so the result equals `mfpi-run` on the same image, value for value.
    `progress(done, total)` (tiles) is called after each batch; an exception it raises stops
    the run and is raised here (how a caller cancels). `convert_channels`: as `mfpi-run --convert-channels`.
    """
    spec = backend.spec
    slide = ArraySlide(image)
    rule = pixel_rule(
        slide.info.dtype, slide.info.samples, spec.channels, where="image", convert_channels=convert_channels
    )
    source = TileSource(slide, rule)
    plan, chosen = choose_plan(source.height, source.width, halo, spec.profiles, spec.stride, tile, spec.scale)
    groups = batches(plan.n_tiles, batch or chosen)
    scale = spec.scale
    out = np.empty((spec.planes, scale * source.height, scale * source.width, spec.channels), np.uint8)

    def write(t: Tile, planes: np.ndarray) -> None:
        box = t.core.scaled(scale)
        out[:, box.y0 : box.y1, box.x0 : box.x1] = planes

    done = 0

    def on_batch(_: int, tiles: int) -> None:
        nonlocal done
        done += tiles
        if progress is not None:
            progress(done, plan.n_tiles)

    stream_tiles(source, plan, groups, range(len(groups)), backend, write, on_batch=on_batch)
    return out
