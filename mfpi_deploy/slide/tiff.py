"""TIFF, BigTIFF, OME-TIFF, SVS and other pyramidal TIFFs read lazily through tifffile's zarr store."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
import zarr

from mfpi_deploy.slide import metadata
from mfpi_deploy.slide.base import Slide, SlideError, SlideInfo

_SAMPLE_AXES = ("S", "C")


class TiffSlide(Slide):
    """Level `level` of the first series of a TIFF; reads only the chunks (tiles/strips) it needs."""

    def __init__(self, path: str | Path, level: int = 0) -> None:
        self.path = Path(path)
        try:
            self._tif = tifffile.TiffFile(self.path)
        except (tifffile.TiffFileError, ValueError, struct_error(), IndexError) as exc:
            raise SlideError(f"not a readable TIFF ({exc})") from None
        try:
            self._open(level)
        except SlideError:
            self._tif.close()
            raise
        except Exception as exc:  # tifffile raises many kinds on corrupt files
            self._tif.close()
            raise SlideError(f"corrupt TIFF ({type(exc).__name__}: {exc})") from None

    def _open(self, level: int) -> None:
        tif = self._tif
        if not tif.series:
            raise SlideError("no image in this TIFF")
        series = tif.series[0]
        if not 0 <= level < len(series.levels):
            raise SlideError(f"level {level} does not exist (the file has {len(series.levels)} level(s))")
        lev = series.levels[level]
        axes, shape = lev.axes, lev.shape
        if 0 in shape:
            raise SlideError(f"zero-size image {shape}")
        if "Y" not in axes or "X" not in axes:
            raise SlideError(f"no Y and X axes (axes {axes})")
        extra = [(a, n) for a, n in zip(axes, shape) if a not in "YX" + "".join(_SAMPLE_AXES) and n > 1]
        sample_axes = [a for a in axes if a in _SAMPLE_AXES]
        if len(sample_axes) > 1:
            extra.extend((a, shape[axes.index(a)]) for a in sample_axes[1:] if shape[axes.index(a)] > 1)
            sample_axes = sample_axes[:1]
        if extra:
            dims = ", ".join(f"{a}={n}" for a, n in extra)
            raise SlideError(f"a multi-dimensional image (axes {axes}, {dims}); mfpi-run takes one 2D image")
        if lev.keyframe.photometric == 3:  # PALETTE: indices into a colour map
            raise SlideError("a palette-colour image; convert it to RGB first")
        self._check_extent(lev)
        self._axes = axes
        self._sample_axis = sample_axes[0] if sample_axes else None
        self._store = series.aszarr(level=level)
        self._array = zarr.open_array(self._store, mode="r")
        samples = shape[axes.index(self._sample_axis)] if self._sample_axis else 1
        page = lev.keyframe
        level0 = series.levels[0]
        downsample = level0.shape[level0.axes.index("X")] / shape[axes.index("X")]
        if abs(downsample - round(downsample)) < 0.05 * downsample:  # 190 px / 48 px is a 4x level
            downsample = float(round(downsample))
        size0 = self._pixel_size_level0(series)
        max_value = page.tags.valueof(281)  # MaxSampleValue
        if isinstance(max_value, tuple):
            max_value = max(max_value)
        if max_value is not None and np.dtype(lev.dtype) == np.uint8:
            max_value = None
        fmt = "svs" if tif.is_svs else "ome-tiff" if tif.is_ome else "tiff"
        self.info = SlideInfo(
            path=str(self.path), height=shape[axes.index("Y")], width=shape[axes.index("X")],
            samples=samples, dtype=np.dtype(lev.dtype),
            pixel_size_um=size0 * downsample if size0 else None, level=level,
            levels=len(series.levels), format=fmt,
            max_value=int(max_value) if max_value else None,
        )

    def _check_extent(self, lev: tifffile.TiffPageSeries) -> None:
        """Refuse a file whose tiles or strips point past its end (truncated, or a lying header)."""
        size = os.path.getsize(self.path)
        for page in lev.pages:
            if page is None:
                continue
            offsets, counts = page.dataoffsets, page.databytecounts
            if not offsets:
                raise SlideError("no pixel data")
            end = max(o + c for o, c in zip(offsets, counts))
            if end > size:
                raise SlideError(f"truncated: pixel data reaches byte {end} but the file has {size} bytes")
            expected = int(np.prod(page.shape)) * np.dtype(page.dtype).itemsize
            if page.compression == 1 and sum(counts) < expected:
                raise SlideError(f"truncated: {sum(counts)} pixel bytes where the header needs {expected}")

    def _pixel_size_level0(self, series: tifffile.TiffPageSeries) -> float | None:
        tif = self._tif
        page = tif.pages.first
        if tif.is_ome:
            size = metadata.ome_pixel_size_um(tif.ome_metadata)
            if size:
                return size
        if tif.is_svs:
            size = metadata.svs_pixel_size_um(page.description)
            if size:
                return size
        xres = page.tags.valueof(282)
        unit = page.tags.valueof(296)
        if tif.is_imagej:
            size = metadata.imagej_pixel_size_um(xres, tif.imagej_metadata)
            if size:
                return size
        return metadata.resolution_pixel_size_um(xres, int(unit) if unit is not None else None)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        index = []
        for axis in self._axes:
            if axis == "Y":
                index.append(slice(y0, y1))
            elif axis == "X":
                index.append(slice(x0, x1))
            elif axis == self._sample_axis:
                index.append(slice(None))
            else:
                index.append(0)
        try:
            data = self._array[tuple(index)]
        except Exception as exc:  # decoding errors surface here, per tile
            raise SlideError(f"cannot decode pixels at y={y0}..{y1}, x={x0}..{x1} ({type(exc).__name__}: {exc})") from None
        kept = [a for a in self._axes if a in ("Y", "X") or a == self._sample_axis]
        order = [kept.index("Y"), kept.index("X")] + ([kept.index(self._sample_axis)] if self._sample_axis else [])
        data = np.transpose(data, order)
        return data if self._sample_axis else data[..., None]

    def close(self) -> None:
        try:
            self._store.close()
        except Exception:
            pass
        self._tif.close()


def struct_error() -> type[Exception]:
    import struct

    return struct.error
