"""napari reader for `mfpi-run` outputs: an `.ome.tif` or `.ome.zarr` focal stack as one lazy multiscale
Image layer (Z, Y, X[, 3]) placed by its physical sizes, so the z slider walks through focus in µm."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import tifffile
import zarr

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.napari.layers import LayerData, stack_kwargs, z_range_label
from mfpi_deploy.output.layout import OutputFormat, plane_spacing_um
from mfpi_deploy.tiffmeta import read_ome

Reader = Callable[[Any], list[LayerData]]


class StackReadError(MfpiError):
    """A file that looks like an mfpi output but cannot be read as a focal stack."""


def get_reader(path: str | list[str]) -> Reader | None:
    """npe2 reader hook: our reader for one `.ome.tif(f)` / `.ome.zarr` path, else None (another plugin's turn)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        fmt = OutputFormat.from_path(str(path).rstrip("/"))
    except MfpiError:
        return None
    readable = is_mfpi_zarr(path) if fmt is OutputFormat.OME_ZARR else is_stack_tiff(path)
    return read_stack if readable else None


def read_stack(path: str | list[str]) -> list[LayerData]:
    """The stack at `path` as napari layer data (one Image layer, all pyramid levels, read lazily)."""
    path = str(path[0] if isinstance(path, list) else path).rstrip("/")
    if OutputFormat.from_path(path) is OutputFormat.OME_ZARR:
        return [read_zarr_stack(path)]
    return [read_tiff_stack(path)]


def _name(path: str, planes_um: list[float]) -> str:
    return f"{Path(path).name}, {z_range_label(planes_um)}"


STACK_AXES = ("ZYX", "ZYXS")


def is_stack_tiff(path: str | Path) -> bool:
    """Whether the first series of a TIFF is a focal stack (Z, Y, X[, RGB]); reads the header only."""
    try:
        with tifffile.TiffFile(str(path)) as tif:
            return bool(tif.series) and tif.series[0].axes.upper() in STACK_AXES
    except Exception:  # not a readable TIFF: tifffile raises several types
        return False


def read_tiff_stack(path: str) -> LayerData:
    """An OME-TIFF stack (pages = planes, pyramid in SubIFDs); scale from its OME-XML."""
    tif = tifffile.TiffFile(path)  # stays open: the layer reads tiles from it lazily
    try:
        series = tif.series[0]
        axes = series.axes.upper()
        if axes not in STACK_AXES:
            raise StackReadError(f"{path}: axes {series.axes} are not a focal stack (Z, Y, X[, RGB])")
        levels = [zarr.open_array(series.aszarr(level=k), mode="r") for k in range(len(series.levels))]
        info = read_ome(tif.ome_metadata)
    except BaseException:
        tif.close()
        raise
    planes_um = info.planes_um or [float(z) for z in range(levels[0].shape[0])]
    px = info.pixel_size_um or 1.0
    rgb = axes.endswith("S") and levels[0].shape[-1] == 3
    kwargs = stack_kwargs(
        planes_um,
        name=_name(path, planes_um),
        scale=(plane_spacing_um(planes_um), px, px),
        translate=(float(planes_um[0]), 0.0, 0.0),
        rgb=rgb,
        pixel_unit="micrometer" if info.pixel_size_um else None,
    )
    return _levels_data(levels), kwargs, "image"


def is_mfpi_zarr(path: str | Path) -> bool:
    """Whether `path` is an OME-Zarr group written by `mfpi-run` (other OME-Zarrs are left to other readers)."""
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:  # not a zarr group at all: zarr raises several types
        return False
    return "mfpi" in group.attrs and "multiscales" in group.attrs


def read_zarr_stack(path: str) -> LayerData:
    """An NGFF 0.4 stack (axes c, z, y, x) -> one (Z, Y, X[, 3]) layer; scale from level 0's transforms."""
    import dask.array as da

    group = zarr.open_group(path, mode="r")
    multiscale = group.attrs["multiscales"][0]
    axes = [a["name"] for a in multiscale["axes"]]
    if axes != ["c", "z", "y", "x"]:
        raise StackReadError(f"{path}: axes {axes} are not (c, z, y, x)")
    transforms = {t["type"]: t for t in multiscale["datasets"][0]["coordinateTransformations"]}
    _, dz, py, px = transforms["scale"]["scale"]
    _, z0, ty, tx = transforms.get("translation", {"translation": [0.0] * 4})["translation"]
    layout = group.attrs["mfpi"]["layout"]
    planes_um = [float(z) for z in layout["planes_um"]]
    arrays = [da.from_zarr(group[d["path"]]) for d in multiscale["datasets"]]
    rgb = arrays[0].shape[0] == 3
    levels = [da.moveaxis(a, 0, -1) if rgb else a[0] for a in arrays]
    unit = next((a.get("unit") for a in multiscale["axes"] if a["name"] == "x"), None)
    kwargs = stack_kwargs(
        planes_um, name=_name(path, planes_um), scale=(dz, py, px), translate=(z0, ty, tx), rgb=rgb, pixel_unit=unit
    )
    return _levels_data(levels), kwargs, "image"


def _levels_data(levels: list[Any]) -> Any:
    """napari takes a list for a pyramid and the array itself for a single level."""
    return levels if len(levels) > 1 else levels[0]
