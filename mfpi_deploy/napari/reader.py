"""napari reader for `mfpi-run` outputs: an `.ome.tif` or `.ome.zarr` focal stack as one lazy multiscale
Image layer (Z, Y, X[, 3]) placed by its physical sizes, so the z slider walks through focus in µm.
The file is opened and checked by `output.reader.StackReader`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mfpi_deploy.checkpoint.card import z_range_label
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.napari.layers import LayerData, stack_kwargs
from mfpi_deploy.output.layout import OutputFormat, plane_spacing_um
from mfpi_deploy.output.reader import StackReader

Reader = Callable[[Any], list[LayerData]]


def get_reader(path: str | list[str]) -> Reader | None:
    """npe2 reader hook: our reader for one `mfpi-run` output (`.ome.tif(f)` / `.ome.zarr`), else None
    (another plugin's turn). Opens its header only."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        StackReader(str(path).rstrip("/")).close()
    except MfpiError:
        return None
    return read_stack


def read_stack(path: str | list[str]) -> list[LayerData]:
    """The stack at `path` as napari layer data (one Image layer, all pyramid levels, read lazily)."""
    path = str(path[0] if isinstance(path, list) else path).rstrip("/")
    stack = StackReader(path)  # stays open: the layer reads tiles from it lazily
    rgb = stack.channels == 3
    levels = [stack.level_array(k) for k in range(stack.levels)]
    if stack.format is OutputFormat.OME_ZARR:  # stored (c, z, y, x): napari takes (z, y, x[, 3])
        import dask.array as da

        arrays = [da.from_zarr(a) for a in levels]
        levels = [da.moveaxis(a, 0, -1) if rgb else a[0] for a in arrays]
    planes_um = list(stack.planes_um)
    px = stack.pixel_size_um or 1.0
    kwargs = stack_kwargs(
        planes_um,
        name=f"{stack.path.name}, {z_range_label(planes_um, stack.z_in_steps)}",
        scale=(plane_spacing_um(planes_um), px, px),
        translate=(float(planes_um[0]), 0.0, 0.0),
        rgb=rgb,
        pixel_unit="micrometer" if stack.pixel_size_um else None,
        z_in_steps=stack.z_in_steps,
    )
    return [(levels if len(levels) > 1 else levels[0], kwargs, "image")]  # napari: a list is a pyramid
