"""Lazy windows of a finished output stack (OME-Zarr or OME-TIFF): only the chunks or tiles a window needs are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import zarr

from mfpi_deploy.output import zarr_stack
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.tiling import Box


class StackReader:
    """Full-resolution planes of an output written by this package, window by window, as (h, w, channels)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.format = OutputFormat.from_path(self.path)
        self._tif: tifffile.TiffFile | None = None
        if self.format is OutputFormat.OME_ZARR:
            self._array = zarr_stack.open_level(self.path, 0)  # (c, z, y, x)
            channels, self.planes, self.height, self.width = self._array.shape
        else:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]  # (z, y, x[, s]): axes ZYX or ZYXS
            self._store = series.aszarr(level=0)
            self._array = zarr.open_array(self._store, mode="r")
            self.planes, self.height, self.width = series.shape[:3]

    def read(self, z: int, box: Box) -> np.ndarray:
        """Plane z, window `box` (output pixels), as uint8 (h, w, channels)."""
        if self._tif is None:
            return np.moveaxis(self._array[:, z, box.y0 : box.y1, box.x0 : box.x1], 0, -1)
        block = self._array[z, box.y0 : box.y1, box.x0 : box.x1]
        return block if block.ndim == 3 else block[..., None]

    def close(self) -> None:
        if self._tif is not None:
            self._store.close()
            self._tif.close()

    def __enter__(self) -> StackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
