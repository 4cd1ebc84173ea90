"""One refocus job without Qt: open the engine, run `predict_image` on an image with progress and
cancel, and say where the stack sits; the widget runs this in a napari thread worker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.checkpoint.card import z_range_label
from mfpi_deploy.checkpoint.default import DEFAULT_NAME
from mfpi_deploy.cli.run import resolve_engine
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.infer.image import Progress, predict_image
from mfpi_deploy.napari.layers import LayerData, Placement, stack_layer, stack_placement
from mfpi_deploy.tiling import Box

Log = Callable[[str], None]


class RefocusCancelled(MfpiError):
    """The user cancelled a refocus run before it finished."""


@dataclass(frozen=True)
class RefocusJob:
    """What to run: the engine (`default`: the bundled model), the backend, and the input's place."""

    engine: str | Path = DEFAULT_NAME
    backend: str = "auto"
    placement: Placement = Placement()
    region: Box | None = None  # the part of the layer's level 0 the image is (None: all of it)
    name: str = "image"
    pixel_unit: str | None = None  # the input's y/x unit, when it has a physical one
    convert_channels: bool = False  # grey image on an RGB model (or the reverse), as mfpi-run --convert-channels


def engine_source(engine: str | Path, backend: str, log: Log) -> Path:
    """The engine folder or checkpoint `mfpi-run --engine` would take. `default`, empty, or a path
    ending in `default` that does not exist (a file picker makes names absolute): the bundled model."""
    given = str(engine).strip()
    bundled = given in ("", DEFAULT_NAME) or (Path(given).name == DEFAULT_NAME and not Path(given).exists())
    return resolve_engine(None if bundled else given, backend, log)


def cancellable(cancel: threading.Event, progress: Progress | None) -> Progress:
    """A progress callback that reports, then raises RefocusCancelled once `cancel` is set."""

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if cancel.is_set():
            raise RefocusCancelled("refocus cancelled")

    return report


def refocus(
    image: np.ndarray,
    job: RefocusJob,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    log: Log = print,
) -> LayerData:
    """Run `job` on a (H, W[, C]) uint8/uint16 image -> the focal stack as napari layer data.

    Raises RefocusCancelled (nothing returned, no layer) when `cancel` is set during the run.
    """
    cancel = cancel or threading.Event()
    source = engine_source(job.engine, job.backend, log)
    if cancel.is_set():
        raise RefocusCancelled("refocus cancelled")
    with open_backend(job.backend, source, log=log) as backend:
        log(f"running {backend.describe()} on {image.shape[1]}x{image.shape[0]} pixels")
        stack = predict_image(
            image, backend, progress=cancellable(cancel, progress), convert_channels=job.convert_channels
        )
        spec = backend.spec
    scale, translate = stack_placement(job.placement, spec.planes_um, spec.scale, job.region)
    name = f"{job.name} refocused, {z_range_label(spec.planes_um, spec.z_in_steps)}"
    return stack_layer(
        stack,
        spec.planes_um,
        name=name,
        scale=scale,
        translate=translate,
        pixel_unit=job.pixel_unit,
        z_in_steps=spec.z_in_steps,
    )
