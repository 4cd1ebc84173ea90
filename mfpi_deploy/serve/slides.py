"""The slides a server shows: named on the command line, opened and checked at start.

A path is a finished `mfpi-run` output (an OME-Zarr with mfpi's layout, or an OME-TIFF with a
record next to it or `.mfp.` in its name) served from its stored pyramid, or an input slide
served as its own pyramid and refocused live. Each gets a NAME from its file name (image
suffixes dropped; characters outside [A-Za-z0-9._-] become `_`); two slides with one NAME are
refused at start, as is a slide that cannot be read (the same one-line errors as `mfpi-run`).
Only these NAMEs reach the file system: the URL never names a path.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.checkpoint.card import z_unit
from mfpi_deploy.cohort.jobs import OUTPUT_MARK, default_output, slide_stem
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.plan import open_source, plan_run
from mfpi_deploy.run.state import record_path
from mfpi_deploy.serve.config import ServeConfig
from mfpi_deploy.serve.dzi import DziGeometry
from mfpi_deploy.serve.staging import Stage
from mfpi_deploy.serve.views import InputView, LivePlanes, StoredPlanes
from mfpi_deploy.slide import SlideInputError
from mfpi_deploy.slide.zstack import PlaneChoice

NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OUTPUT_SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif")


def slide_name(path: Path) -> str:
    """The NAME a slide is served under: its file name without image suffixes (and without .mfp)."""
    name = path.name.rstrip("/")
    for suffix in (".ome.zarr",):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = slide_stem(path)
    if name.endswith(OUTPUT_MARK):
        name = name[: -len(OUTPUT_MARK)]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-") or "slide"
    return name[:128]


def is_output(path: Path) -> bool:
    """A finished mfpi-run output (served without an engine), by name, record or format."""
    lower = path.name.lower()
    if lower.endswith(".ome.zarr"):
        return True
    if lower.endswith(_OUTPUT_SUFFIXES):
        return f"{OUTPUT_MARK}.ome." in lower or record_path(path).exists()
    return False


@dataclass
class ServedSlide:
    """One slide as served: the refocused planes (live or stored) and, if known, the input."""

    name: str
    path: Path
    geometry: DziGeometry  # the refocused planes at full resolution
    planes_um: tuple[float, ...]
    pixel_size_um: float | None  # of the refocused planes' full resolution
    scale: int
    input: InputView | None = None
    input_geometry: DziGeometry | None = None
    live: LivePlanes | None = None
    stored: StoredPlanes | None = None
    z_in_steps: bool = False  # planes_um are plane steps (a model whose training stack had no z spacing)

    @property
    def kind(self) -> str:
        return "live" if self.live is not None else "output"

    @property
    def planes(self) -> int:
        return len(self.planes_um)

    def describe(self) -> dict[str, Any]:
        """What /slides says about it: enough for a viewer to lay out planes, scale bar and toggles."""
        return {
            "name": self.name,
            "kind": self.kind,
            "width": self.geometry.width,
            "height": self.geometry.height,
            "planes": self.planes,
            "planes_um": list(self.planes_um),
            "z_unit": z_unit(self.z_in_steps),
            "pixel_size_um": self.pixel_size_um,
            "scale": self.scale,
            "has_input": self.input is not None,
            "input_width": self.input_geometry.width if self.input_geometry else None,
            "input_height": self.input_geometry.height if self.input_geometry else None,
            "tile": self.geometry.tile,
        }

    def close(self) -> None:
        for part in (self.input, self.stored):
            if part is not None:
                part.close()


def check_paths(paths: Sequence[Path]) -> list[tuple[str, Path, bool]]:
    """(NAME, path, is_output) for every path; refuses missing paths and NAME clashes (one line each)."""
    if not paths:
        raise MfpiError("missing SLIDE_OR_OUTPUT: name at least one slide or mfpi-run output to serve")
    seen: dict[str, Path] = {}
    found = []
    for path in paths:
        if not path.exists():
            raise SlideInputError(f"{path}: no such file")
        name = slide_name(path)
        if name in seen and path.samefile(seen[name]):
            raise MfpiError(f"{path} is named twice: name each slide once")
        if name in seen:
            raise MfpiError(f"{path} and {seen[name]} would both be served as {name!r}: rename one")
        seen[name] = path
        found.append((name, path, is_output(path)))
    return found


class SlideSet(contextlib.ExitStack):
    """The opened slides by NAME; closes every file and source it opened."""

    def __init__(self) -> None:
        super().__init__()
        self.slides: dict[str, ServedSlide] = {}

    def add(self, slide: ServedSlide) -> None:
        self.slides[slide.name] = slide
        self.callback(slide.close)


def open_stored(name: str, path: Path, config: ServeConfig) -> ServedSlide:
    stored = StoredPlanes(path)
    return ServedSlide(
        name=name,
        path=path,
        geometry=DziGeometry(stored.width, stored.height, config.tile, config.overlap),
        planes_um=stored.planes_um,
        pixel_size_um=stored.pixel_size_um,
        scale=2,
        stored=stored,
        z_in_steps=stored.z_in_steps,
    )


def open_input(path: Path, plane: PlaneChoice = None) -> InputView:
    """The input slide for display, one `plane` of a Z-stack (refused with mfpi-run's one-line
    errors when unreadable, a Z-stack without `plane` included)."""
    return InputView(path, plane=plane)


def open_live(
    name: str,
    path: Path,
    view: InputView,
    backend: Backend,
    config: ServeConfig,
    slides: SlideSet,
    cached: Callable[[str, int], bool],
    log: Callable[[str], None],
) -> ServedSlide:
    """An input slide refocused on request: planned exactly as `mfpi-run SLIDE` plans it (tile,
    halo, batch groups), so every engine tile is the one `mfpi-run` computes there."""
    options = RunOptions(
        progress=False,
        log=log,
        tile=config.engine_tile,
        batch=config.tile_batch,
        convert_channels=config.convert_channels,
        plane=view.plane,
    )
    if config.stage is None:
        run = plan_run(path, default_output(path), backend.facts(), options)
        stage = None
    else:  # as `mfpi-run SLIDE --output DIR/NAME.mfp.ome.zarr`: its partial run is the stage
        run = plan_run(path, default_output(path, OutputFormat.OME_ZARR, config.stage), backend.facts(), options)
        stage = Stage(run, log)
        log(f"{name}: staging in {run.state.root} ({len(stage.refresh())} of {len(run.groups)} batches there)")
    source = slides.enter_context(open_source(run))
    live = LivePlanes(
        run,
        source,
        backend,
        compute_levels=config.compute_levels,
        cached=lambda index: cached(name, index),
        stage=stage,
    )
    if config.warm_up:
        log(f"{name}: engine warmed at the plan's {run.plan.tile} px tiles in {live.warm_up():.1f} s")
    spec = backend.spec
    return ServedSlide(
        name=name,
        path=path,
        geometry=DziGeometry(live.width, live.height, config.tile, config.overlap),
        planes_um=tuple(float(z) for z in spec.planes_um),
        pixel_size_um=view.pixel_size_um / spec.scale if view.pixel_size_um else None,
        scale=spec.scale,
        input=view,
        input_geometry=DziGeometry(view.width, view.height, config.tile, config.overlap),
        live=live,
        z_in_steps=spec.z_in_steps,
    )
