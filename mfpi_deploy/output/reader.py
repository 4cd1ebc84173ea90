"""A finished `mfpi-run` output (OME-Zarr or OME-TIFF) opened for reading: checked to be one of
ours, its shape and physical sizes, and its pyramid levels read lazily (only the chunks or tiles
a window needs). The one opener of outputs: mfpi-serve, the napari reader and the run's preview
all read through it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import zarr

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.output.layout import OutputFormat, StackLayout
from mfpi_deploy.tiffmeta import read_ome, tifffile_messages
from mfpi_deploy.tiling import Box


class StackReadError(MfpiError):
    """A file that is not an mfpi-run output or cannot be read as its focal stack (names the file)."""


class StackReader:
    """The planes of an output written by this package, at any pyramid level, window by window as
    (h, w, channels) uint8; refused with a one-line StackReadError if it is not an mfpi-run stack.

    `levels` is the number of pyramid levels (level k is 2**k times smaller than level 0);
    `level_array(k)` is level k as stored, opened lazily: (c, z, y, x) in an OME-Zarr, (z, y, x[, s])
    in an OME-TIFF. Close it (or use it as a context manager) to release the file and its stores.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.format = OutputFormat.from_path(self.path)
        self._tif: tifffile.TiffFile | None = None
        self._stores: list = []
        self._arrays: dict[int, zarr.Array] = {}
        try:
            if self.format is OutputFormat.OME_ZARR:
                self._open_zarr()
            else:
                self._open_tiff()
            self._check_levels()
        except StackReadError:
            self.close()
            raise
        except Exception as exc:  # tifffile and zarr raise many kinds on damaged files
            self.close()
            raise StackReadError(f"{self.path}: cannot read this output ({type(exc).__name__}: {exc})") from None

    def _open_zarr(self) -> None:
        path = self.path
        if not path.is_dir():
            raise StackReadError(f"{path}: no such OME-Zarr folder")
        try:
            layout = zarr_stack.read_layout(path)
            self.levels = zarr_stack.level_count(path)
        except (KeyError, ValueError, TypeError):
            raise StackReadError(f"{path}: not an OME-Zarr written by mfpi-run (no mfpi layout)") from None
        self.planes, self.channels = layout.planes, layout.channels
        self.height, self.width = layout.height, layout.width
        self.planes_um = tuple(layout.planes_um)
        self.z_in_steps = layout.z_in_steps
        self.pixel_size_um = layout.pixel_size_um

    def _open_tiff(self) -> None:
        path = self.path
        if not path.is_file():
            raise StackReadError(f"{path}: no such file")
        with tifffile_messages():  # tifffile's complaints are the error below, not stray log lines
            tif = tifffile.TiffFile(path)
            self._tif = tif
            if not tif.series:
                raise StackReadError(f"{path}: no image in this TIFF")
            series = tif.series[0]
        if not tif.is_ome or not series.axes.startswith("ZYX"):
            raise StackReadError(f"{path}: not an OME-TIFF stack written by mfpi-run (axes {series.axes})")
        shape = series.shape
        self.planes, self.height, self.width = shape[:3]
        self.channels = shape[3] if len(shape) > 3 else 1
        self.levels = len(series.levels)
        ome = read_ome(tif.ome_metadata)
        centred = [float(z - self.planes // 2) for z in range(self.planes)]  # no z positions: plane steps
        self.planes_um = tuple(ome.planes_um or centred)
        self.z_in_steps = ome.z_in_steps or not ome.planes_um
        self.pixel_size_um = ome.pixel_size_um

    def _check_levels(self) -> None:
        """Every pyramid level opens and has its shape (planes, then each level half the one
        below, rounded up): a damaged output is refused here, not at its first read."""
        h, w = self.height, self.width
        for k in range(self.levels):
            shape = self.level_array(k).shape
            found = (shape[1], *shape[2:4]) if self._tif is None else tuple(shape[:3])
            if found != (self.planes, h, w):
                raise StackReadError(
                    f"{self.path}: pyramid level {k} holds {found[0]} planes of {found[2]}x{found[1]}, "
                    f"not {self.planes} of {w}x{h} (a damaged or altered output)"
                )
            h, w = -(-h // 2), -(-w // 2)

    @property
    def layout(self) -> StackLayout:
        """Shape and physical sizes of level 0 (chunk 0: reading does not depend on the chunking)."""
        return StackLayout(
            self.planes,
            self.channels,
            self.height,
            self.width,
            0,
            self.pixel_size_um,
            self.planes_um,
            z_in_steps=self.z_in_steps,
        )

    def level_array(self, level: int = 0) -> zarr.Array:
        """Pyramid level `level` as stored, a lazy zarr array (opened on first use, kept until close)."""
        array = self._arrays.get(level)
        if array is None:
            if self._tif is None:
                array = zarr_stack.open_level(self.path, level)
            else:
                store = self._tif.series[0].aszarr(level=level)
                self._stores.append(store)
                array = zarr.open_array(store, mode="r")
            self._arrays[level] = array
        return array

    def read(self, z: int, box: Box, level: int = 0) -> np.ndarray:
        """Plane `z`, window `box` (in pixels of pyramid level `level`), as uint8 (h, w, channels)."""
        return self._window(slice(z, z + 1), box, level)[0]

    def read_planes(self, box: Box, level: int = 0) -> np.ndarray:
        """Every plane of window `box` of pyramid level `level` in one read, as uint8 (planes, h, w, channels)."""
        return self._window(slice(None), box, level)

    def _window(self, planes: slice, box: Box, level: int) -> np.ndarray:
        array = self.level_array(level)
        rows, cols = slice(box.y0, box.y1), slice(box.x0, box.x1)
        if self._tif is None:
            return np.moveaxis(array[:, planes, rows, cols], 0, -1)  # (c, z, y, x) -> (z, y, x, c)
        block = array[planes, rows, cols]  # (z, y, x[, s])
        return block if block.ndim == 4 else block[..., None]

    def close(self) -> None:
        for store in self._stores:
            try:
                store.close()
            except Exception:
                pass
        self._stores.clear()
        self._arrays.clear()
        if self._tif is not None:
            self._tif.close()

    def __enter__(self) -> StackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
