"""TIFF, BigTIFF, OME-TIFF, SVS and other pyramidal TIFFs read lazily through tifffile's zarr store.

Before any pixel is read, the file is checked against its own header: tags whose values lie
past the end of the file (a cut file: an OME-TIFF keeps its OME-XML last), tiles or strips
past the end, fewer tiles than the image size needs, an image size that the file's bytes
cannot hold, tiles stored without data (byte count 0), and 1-bit images. tifffile's own log
messages are collected and reported by the run as warnings instead of stray log lines.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import tifffile
import zarr

from mfpi_deploy import tiffmeta
from mfpi_deploy.slide.base import Slide, SlideError, SlideInfo
from mfpi_deploy.slide.focus import central_block
from mfpi_deploy.slide.zstack import UNNAMED_AXES, PlaneChoice, resolve_plane
from mfpi_deploy.tiffmeta import tifffile_messages

_SAMPLE_AXES = ("S", "C")
# No codec in a TIFF packs image bytes more densely than this (zlib: ~1000:1); a header
# claiming more pixels than the file's bytes could hold at this ratio lies about the size.
MAX_COMPRESSION_RATIO = 1 << 20
_BAD_OFFSET = re.compile(r"TiffTag (\d+) @\d+> invalid value offset (\d+)")
_TAG_ROLES = {270: "where an OME-TIFF keeps its OME-XML metadata"}
_EMPTY_SHOWN = 3  # empty tiles named in the message


ALPHA_EXTRASAMPLES = (1, 2)  # TIFF ExtraSamples: associated, unassociated alpha (0: unspecified)

# Signatures of image files users may hand in instead of a TIFF (first bytes).
OTHER_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"BM", "BMP"),
    (b"GIF8", "GIF"),
    (b"\x89HDF\r\n\x1a\n", "HDF5"),
    (b"PK\x03\x04", "ZIP archive"),
)


def other_image_kind(path: Path) -> str | None:
    """The name of the non-TIFF image format `path` starts like, if it is one we know."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    return next((name for magic, name in OTHER_IMAGES if head.startswith(magic)), None)


# TIFF Photometric values whose samples are not grey (0 = black) or RGB: refused, not misread
FOREIGN_COLOURS = {
    0: "min-is-white grey (0 = white)",
    4: "transparency-mask",
    5: "CMYK (separated)",
    8: "CIE L*a*b*",
    9: "ICC L*a*b*",
    10: "ITU L*a*b*",
    32803: "colour-filter-array (raw sensor)",
    32844: "LogL",
    32845: "LogLuv",
}


class TiffSlide(Slide):
    """Level `level` of series `series` of a TIFF (plane `plane` of a Z-stack); reads only the chunks
    (tiles/strips) it needs."""

    def __init__(
        self,
        path: str | Path,
        level: int = 0,
        *,
        series: int = 0,
        plane: PlaneChoice = None,
        allow_empty_tiles: bool = False,
    ) -> None:
        self.path = Path(path)
        self.allow_empty_tiles = allow_empty_tiles
        self.warnings: tuple[str, ...] = ()
        self._size = os.path.getsize(self.path)
        with tifffile_messages() as messages:
            try:
                self._tif = tifffile.TiffFile(self.path)
            except (tifffile.TiffFileError, ValueError, struct_error(), IndexError) as exc:
                kind = other_image_kind(self.path)
                if kind:
                    raise SlideError(
                        f"a {kind} file, not a TIFF: mfpi-run reads TIFF slides (OME-TIFF, SVS, NDPI-TIFF, "
                        "plain TIFF); save it as a TIFF first"
                    ) from None
                raise SlideError(f"not a readable TIFF ({exc})") from None
            try:
                self._refuse_cut_tags(messages)
                self._open(level, series, plane)
                self._refuse_cut_tags(messages)
            except SlideError:
                self._tif.close()
                raise
            except Exception as exc:  # tifffile raises many kinds on corrupt files
                self._tif.close()
                raise SlideError(f"corrupt TIFF ({type(exc).__name__}: {exc})") from None
        self.warnings += tuple(f"tifffile: {' '.join(m.split())}" for m in messages)

    def _refuse_cut_tags(self, messages: list[str]) -> None:
        """A tag whose value lies past the end of the file: the file was cut short (or damaged)."""
        for message in messages:
            found = _BAD_OFFSET.search(message)
            if found:
                code, offset = int(found.group(1)), int(found.group(2))
                name = tifffile.TIFF.TAGS.get(code, "unknown")
                role = f", {_TAG_ROLES[code]}" if code in _TAG_ROLES else ""
                raise SlideError(
                    f"truncated: the {name} tag ({code}{role}) points to byte {offset}, past the end "
                    f"of the file ({self._size} bytes); its value is missing"
                )

    def _open(self, level: int, series_index: int, plane: PlaneChoice) -> None:
        tif = self._tif
        if not tif.series:
            raise SlideError("no image in this TIFF")
        count = len(tif.series)
        if not 0 <= series_index < count:
            raise SlideError(f"series {series_index} does not exist (the file has {count} series, 0..{count - 1})")
        series = tif.series[series_index]
        if not 0 <= level < len(series.levels):
            raise SlideError(f"level {level} does not exist (the file has {len(series.levels)} level(s))")
        lev = series.levels[level]
        axes, shape = lev.axes, lev.shape
        if 0 in shape:
            raise SlideError(f"zero-size image {shape}")
        if "Y" not in axes or "X" not in axes:
            raise SlideError(f"no Y and X axes (axes {axes})")
        extra = [(a, n) for a, n in zip(axes, shape) if a not in "YXZ" + "".join(_SAMPLE_AXES) and n > 1]
        sample_axes = [a for a in axes if a in _SAMPLE_AXES]
        if len(sample_axes) > 1:
            extra.extend((a, shape[axes.index(a)]) for a in sample_axes[1:] if shape[axes.index(a)] > 1)
            sample_axes = sample_axes[:1]
        z_axis = "Z"
        if "Z" not in axes and len(extra) == 1 and extra[0][0] in UNNAMED_AXES:
            if plane is None:
                raise SlideError(
                    f"{extra[0][1]} pages with no axis names (axes {axes}); if they are focal planes, pass "
                    f"--plane N (0..{extra[0][1] - 1}) or --plane sharpest to run one of them"
                )
            z_axis, extra = extra[0][0], []
            self.warnings += (
                f"the file names no axes: its {shape[axes.index(z_axis)]} pages (axis {z_axis}) are taken as Z planes",
            )
        if extra:
            dims = ", ".join(f"{a}={n}" for a, n in extra)
            raise SlideError(f"a multi-dimensional image (axes {axes}, {dims}); mfpi-run takes one 2D image")
        page = lev.keyframe
        if page.bitspersample == 1:
            raise SlideError(
                "a 1-bit (black-and-white, bilevel) image; mfpi-run takes 8- or 16-bit grey or "
                "RGB images: convert it to 8-bit grey first"
            )
        if page.photometric == 3:  # PALETTE: indices into a colour map
            raise SlideError("a palette-colour image; convert it to RGB first")
        foreign = FOREIGN_COLOURS.get(int(page.photometric))
        if foreign:  # read as grey or RGB, its values would mean something else: a wrong output, silently
            raise SlideError(f"a {foreign} image; mfpi-run takes grey (0 = black) or RGB images: convert it first")
        self._check_extent(lev)
        self._axes = axes
        self._z_axis = z_axis
        self._sample_axis = sample_axes[0] if sample_axes else None
        self._store = series.aszarr(level=level)
        self._array = zarr.open_array(self._store, mode="r")
        planes = shape[axes.index(z_axis)] if z_axis in axes else 1
        y0, y1, x0, x1 = central_block(shape[axes.index("Y")], shape[axes.index("X")])
        self._z = 0
        self._z = resolve_plane(plane, planes, lambda z: self._read_at(z, y0, y1, x0, x1))
        samples = shape[axes.index(self._sample_axis)] if self._sample_axis else 1
        if samples in (2, 4) and not any(int(e) in ALPHA_EXTRASAMPLES for e in page.extrasamples or ()):
            self.warnings += (
                f"{samples} samples per pixel, the last not marked as alpha (TIFF ExtraSamples): it is dropped "
                "as alpha; if it is a channel of its own, run each channel from a TIFF of its own",
            )
        level0 = series.levels[0]
        downsample = level0.shape[level0.axes.index("X")] / shape[axes.index("X")]
        if abs(downsample - round(downsample)) < 0.05 * downsample:  # 190 px / 48 px is a 4x level
            downsample = float(round(downsample))
        size0 = self._pixel_size_level0(series, series_index)
        max_value = page.tags.valueof(281)  # MaxSampleValue
        if isinstance(max_value, tuple):
            max_value = max(max_value)
        if max_value is not None and np.dtype(lev.dtype) == np.uint8:
            max_value = None
        fmt = "svs" if tif.is_svs else "ome-tiff" if tif.is_ome else "tiff"
        self.info = SlideInfo(
            path=str(self.path),
            height=shape[axes.index("Y")],
            width=shape[axes.index("X")],
            samples=samples,
            dtype=np.dtype(lev.dtype),
            pixel_size_um=size0 * downsample if size0 else None,
            level=level,
            levels=len(series.levels),
            format=fmt,
            max_value=int(max_value) if max_value else None,
            series=series_index,
            series_count=count,
            plane=self._z,
            planes=planes,
        )

    def _check_extent(self, lev: tifffile.TiffPageSeries) -> None:
        """Refuse pixel data the header cannot account for: a truncated file or a lying header."""
        size = self._size
        empty: list[str] = []
        chunks_total = 0
        for frame in lev.pages:
            if frame is None:
                continue
            page = frame.keyframe  # the geometry (pages after the first of a Z-stack are TiffFrames: data only)
            offsets, counts = frame.dataoffsets, frame.databytecounts
            if not offsets:
                raise SlideError("no pixel data")
            kind = "tiles" if page.is_tiled else "strips"
            needed = math.prod(page.chunked)
            if len(offsets) < needed:
                raise SlideError(
                    f"damaged header: a {page.imagewidth}x{page.imagelength} image needs {needed} {kind} "
                    f"but the file lists {len(offsets)} (the image size in the header is wrong)"
                )
            end = max(o + c for o, c in zip(offsets, counts))
            if end > size:
                raise SlideError(f"truncated: pixel data reaches byte {end} but the file has {size} bytes")
            bits = page.bitspersample * page.samplesperpixel
            row_bytes = -(-page.imagewidth * bits // 8)
            image_bytes = row_bytes * page.imagelength * max(1, page.imagedepth)
            held = sum(counts)
            if page.compression == 1 and held < image_bytes:
                raise SlideError(f"truncated: {held} pixel bytes where the header needs {image_bytes}")
            if image_bytes > held * MAX_COMPRESSION_RATIO:
                raise SlideError(
                    f"damaged header: it claims a {page.imagewidth}x{page.imagelength} image "
                    f"({image_bytes} bytes), more than the file's {held} bytes of pixel data can hold"
                )
            chunks_total += len(offsets)
            empty.extend(_chunk_place(page, i) for i, (o, c) in enumerate(zip(offsets, counts)) if o == 0 or c == 0)
        if empty:
            kind = "tiles" if lev.keyframe.is_tiled else "strips"
            more = len(empty) - _EMPTY_SHOWN
            where = ", ".join(empty[:_EMPTY_SHOWN]) + (f" and {more} more" if more > 0 else "")
            what = f"{len(empty)} of {chunks_total} {kind} hold no pixel data (byte count 0), at {where}"
            if not self.allow_empty_tiles:
                raise SlideError(f"{what}; they would read as black: pass --allow-empty-tiles to run anyway")
            self.warnings += (f"{what}; read as black (--allow-empty-tiles)",)

    def _pixel_size_level0(self, series: tifffile.TiffPageSeries, index: int) -> float | None:
        tif = self._tif
        page = series.levels[0].keyframe
        if tif.is_ome:
            size = tiffmeta.ome_pixel_size_um(tif.ome_metadata, index)
            if size:
                return size
        if tif.is_svs:
            size = tiffmeta.svs_pixel_size_um(tif.pages.first.description)
            if size:
                return size
        xres = page.tags.valueof(282)
        unit = page.tags.valueof(296)
        if tif.is_imagej:
            size = tiffmeta.imagej_pixel_size_um(xres, tif.imagej_metadata)
            if size:
                return size
        return tiffmeta.resolution_pixel_size_um(xres, int(unit) if unit is not None else None)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self._read_at(self._z or 0, y0, y1, x0, x1)

    def _read_at(self, z: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Raw pixels of z plane `z` (0 for a 2D image)."""
        index: list[slice | int] = []
        for axis in self._axes:
            if axis == "Y":
                index.append(slice(y0, y1))
            elif axis == "X":
                index.append(slice(x0, x1))
            elif axis == self._sample_axis:
                index.append(slice(None))
            elif axis == self._z_axis:
                index.append(z)
            else:
                index.append(0)
        try:
            data = self._array[tuple(index)]
        except Exception as exc:  # decoding errors surface here, per tile
            raise SlideError(
                f"cannot decode pixels at y={y0}..{y1}, x={x0}..{x1} ({type(exc).__name__}: {exc})"
            ) from None
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


def _chunk_place(page: tifffile.TiffPage, index: int) -> str:
    """Where chunk `index` of a page lies: `x=.. y=..` of its top-left pixel (and its sample plane)."""
    if page.is_tiled:
        across = math.ceil(page.imagewidth / page.tilewidth)
        down = math.ceil(page.imagelength / page.tilelength)
        per_plane = across * down
        plane, rest = divmod(index, per_plane)
        row, col = divmod(rest, across)
        place = f"x={col * page.tilewidth} y={row * page.tilelength}"
    else:
        per_plane = math.ceil(page.imagelength / page.rowsperstrip)
        plane, rest = divmod(index, per_plane)
        place = f"y={rest * page.rowsperstrip}"
    return place + (f" (sample {plane})" if page.planarconfig == 2 and page.samplesperpixel > 1 else "")


def struct_error() -> type[Exception]:
    import struct

    return struct.error
