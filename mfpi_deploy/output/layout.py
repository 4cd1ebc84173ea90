"""The shape and physical sizes of an output stack (shared by the Zarr and TIFF writers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from mfpi_deploy.errors import MfpiError


class OutputFormat(str, Enum):
    """Output formats, chosen by the output file name."""

    OME_ZARR = "ome-zarr"
    OME_TIFF = "ome-tiff"

    @classmethod
    def from_path(cls, path: str | Path) -> OutputFormat:
        name = Path(path).name.lower()
        if name in (".ome.zarr", ".ome.tif", ".ome.tiff"):  # a hidden file or folder, no name
            raise MfpiError(f"{path}: give the output a name before its extension (e.g. slide{name})")
        if name.endswith(".ome.zarr"):
            return cls.OME_ZARR
        if name.endswith((".ome.tif", ".ome.tiff")):
            return cls.OME_TIFF
        raise MfpiError(f"{path}: output name must end in .ome.zarr or .ome.tif (the format follows the name)")


def plane_spacing_um(planes_um: tuple[float, ...] | list[float]) -> float:
    """Mean spacing of focal planes (NGFF, OME and napari store one z step; 1.0 for a single plane)."""
    zs = planes_um
    return (zs[-1] - zs[0]) / (len(zs) - 1) if len(zs) > 1 and zs[-1] != zs[0] else 1.0


@dataclass(frozen=True)
class StackLayout:
    """An output stack: planes x channels x height x width uint8 (output pixels), chunked in squares."""

    planes: int
    channels: int
    height: int
    width: int
    chunk: int
    pixel_size_um: float | None  # output pixel size (half the input's for a 2x network)
    planes_um: tuple[float, ...]
    name: str = ""
    z_in_steps: bool = False  # planes_um are plane steps: no z size or unit is written (the model's stack had none)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Zarr array shape, axes (c, z, y, x) as NGFF 0.4 orders them."""
        return (self.channels, self.planes, self.height, self.width)

    @property
    def z_spacing_um(self) -> float:
        """Mean spacing of the planes (NGFF and OME store one z step; the offsets are kept too)."""
        return plane_spacing_um(self.planes_um)

    def to_dict(self) -> dict:
        data = {**asdict(self), "planes_um": list(self.planes_um)}
        if not self.z_in_steps:  # run settings and metadata of micrometre stacks stay as they were
            del data["z_in_steps"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StackLayout:
        return cls(**{**data, "planes_um": tuple(data["planes_um"])})
