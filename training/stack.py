"""Multi-focal stacks on disk: one TIFF/OME-TIFF with a Z axis, or one file per plane.

TIFF stacks are opened lazily through tifffile's zarr store, so only the regions asked
for are decoded; a whole-slide stack is never loaded whole. Values are converted to
8 bit by a stated rule (`IntensityRule`), since the network and metrics work on 8 bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mfpi_deploy.choices import Choice
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide.zstack import UNNAMED_AXES
from mfpi_deploy.tiffmeta import OmeInfo, read_ome, tifffile_messages
from mfpi_deploy.tiling import Box


class StackError(MfpiError):
    """A stack file that is missing, corrupt, truncated or of the wrong shape."""


class IntensityRule(Choice):
    """How 16-bit values become 8-bit ones (8-bit data is taken as it is).

    full: linear over the whole type range, uint8 = round(v / 257) (0 -> 0, 65535 -> 255);
          the same for every plane and file, so it never depends on the image content.
    percentile: linear between the 0.1 and 99.9 percentiles of the whole stack (sampled),
          the same window for all planes, for dim 12/16-bit data that does not fill the range.
    auto: full when the stack's 99.9th percentile uses at least a quarter of the 16-bit range,
          else percentile (12-bit cameras, dim exposures: `full` would leave a few grey levels).
    """

    AUTO = "auto"
    FULL = "full"
    PERCENTILE = "percentile"


DIM_SHARE = 0.25  # auto: a stack whose 99.9th percentile is below this share of the range is dim


# Leading axes tifffile gives a series of planes: Z from OME/ImageJ metadata, I or Q for plain pages.
_PLANE_AXES = ("Z", *UNNAMED_AXES)


class FocalStack:
    """A read-only multi-focal stack of shape (Z, H, W, C), C = 1 (grey) or 3 (RGB).

    `read(planes, rect)` returns uint8 (len(planes), h, w, C) after the intensity rule.
    `planes_um` are the z positions from OME metadata when present (else None) and
    `pixel_size_um` the lateral pixel size when present.
    """

    def __init__(
        self,
        sources: list,
        name: str,
        shape: tuple[int, int, int, int],
        dtype: np.dtype,
        planes_um: list[float] | None,
        pixel_size_um: float | None,
        rule: IntensityRule = IntensityRule.FULL,
        planar: bool = False,
    ) -> None:
        self._sources = sources  # one zarr/np array of (Z,H,W[,C]) or a list of per-plane arrays
        self.name = name
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.planes_um = planes_um
        self.pixel_size_um = pixel_size_um
        self.rule = IntensityRule.parse(rule)
        self._window: tuple[float, float] | None = None
        self._planar = planar  # samples stored before YX (ZSYX)

    @property
    def planes(self) -> int:
        return self.shape[0]

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    @property
    def channels(self) -> int:
        return self.shape[3]

    @property
    def bounds(self) -> Box:
        return Box(0, 0, self.height, self.width)

    def read_raw(self, planes: Sequence[int], rect: Box) -> np.ndarray:
        """Native-dtype pixels (len(planes), h, w, C) of a region; decode errors become StackError."""
        if not self.bounds.contains(rect) or rect.height <= 0 or rect.width <= 0:
            raise StackError(f"{self.name}: region {rect} lies outside the stack ({self.height}x{self.width})")
        out = np.empty((len(planes), rect.height, rect.width, self.channels), self.dtype)
        try:
            with tifffile_messages():  # its complaints about damaged data are the error below
                for i, z in enumerate(planes):
                    if self._planar:
                        block = np.moveaxis(
                            np.asarray(self._sources[0][int(z), :, rect.y0 : rect.y1, rect.x0 : rect.x1]), 0, -1
                        )
                    elif len(self._sources) == 1:
                        block = self._sources[0][int(z), rect.y0 : rect.y1, rect.x0 : rect.x1]
                    else:
                        block = self._sources[int(z)][rect.y0 : rect.y1, rect.x0 : rect.x1]
                    out[i] = np.asarray(block).reshape(rect.height, rect.width, self.channels)
        except StackError:
            raise
        except Exception as exc:  # tifffile/zarr/imagecodecs raise many types on damaged data
            raise StackError(
                f"{self.name}: cannot decode pixel data, file truncated or corrupt ({_first_line(exc)})"
            ) from None
        return out

    def read(self, planes: Sequence[int], rect: Box) -> np.ndarray:
        """uint8 pixels (len(planes), h, w, C) of a region, after the intensity rule."""
        return self.to_uint8(self.read_raw(planes, rect))

    @property
    def effective_rule(self) -> IntensityRule:
        """The rule in force (auto resolved on the stack's values; 8-bit stacks are taken as they are)."""
        if self.rule is not IntensityRule.AUTO or self.dtype == np.uint8:
            return self.rule
        dim = self.percentile_window()[1] < DIM_SHARE * float(np.iinfo(self.dtype).max)
        return IntensityRule.PERCENTILE if dim else IntensityRule.FULL

    def to_uint8(self, raw: np.ndarray) -> np.ndarray:
        if self.dtype == np.uint8:
            return raw
        if self.effective_rule is IntensityRule.FULL:
            info = np.iinfo(self.dtype)
            scale = 255.0 / float(info.max)
            return np.clip(np.rint(raw.astype(np.float32) * scale), 0, 255).astype(np.uint8)
        lo, hi = self.percentile_window()
        out = (raw.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def percentile_window(self, samples: int = 16) -> tuple[float, float]:
        """0.1 / 99.9 percentiles over a grid of sampled blocks of every plane (cached)."""
        if self._window is None:
            size = min(256, self.height, self.width)
            ys = np.linspace(0, self.height - size, num=min(4, samples)).astype(int)
            xs = np.linspace(0, self.width - size, num=min(4, samples)).astype(int)
            values = [self.read_raw(range(self.planes), Box(y, x, y + size, x + size)).ravel() for y in ys for x in xs]
            flat = np.concatenate(values).astype(np.float64)
            lo, hi = np.percentile(flat, [0.1, 99.9])
            self._window = (float(lo), float(hi))
        return self._window


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def open_stack(
    paths: str | Path | Sequence[str | Path], *, rule: IntensityRule | str = IntensityRule.AUTO
) -> FocalStack:
    """Open a stack: one multi-plane TIFF (ZYX or ZYXS) or a list of per-plane image files."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise StackError("no stack files given")
    for p in paths:
        if not p.exists():
            raise StackError(f"{p}: no such file")
        if p.is_dir():
            raise StackError(f"{p}: is a folder, expected an image file")
    if len(paths) == 1:
        return _open_tiff_stack(paths[0], IntensityRule.parse(rule))
    return _open_plane_files(paths, IntensityRule.parse(rule))


def _open_tiff_stack(path: Path, rule: IntensityRule) -> FocalStack:
    with tifffile_messages():  # what tifffile logs about a damaged file becomes the one-line errors below
        return _read_tiff_stack(path, rule)


def _read_tiff_stack(path: Path, rule: IntensityRule) -> FocalStack:
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:
        raise StackError(f"{path}: not a readable TIFF ({_first_line(exc)})") from None
    with tif:
        if not tif.series:
            raise StackError(f"{path}: no image data")
        series = tif.series[0]
        shape, axes, dtype = tuple(series.shape), series.axes, series.dtype
        if len(shape) == 2 or (len(shape) == 3 and (axes.endswith("S") or axes.startswith("S"))):
            if len(tif.pages) > 1:
                sizes = sorted({tuple(p.shape) for p in tif.pages if hasattr(p, "shape")})
                raise StackError(f"{path}: planes have different sizes {sizes}, expected one size for all planes")
            raise StackError(
                f"{path}: one 2D image of shape {shape} ({axes}), expected a stack with a Z axis (ZYX or ZYXS)"
            )
        ome = read_ome(tif.ome_metadata) if tif.is_ome else OmeInfo()
        planes_um, pixel = ome.planes_um, ome.pixel_size_um
        if ome.z_in_steps:  # positions without a physical unit: no z spacing to learn
            planes_um = None
    if dtype not in (np.uint8, np.uint16):
        raise StackError(f"{path}: pixel type {dtype} is not supported, expected uint8 or uint16")
    planar = False
    if len(shape) == 3 and axes[0] in _PLANE_AXES:
        z, h, w = shape
        c = 1
    elif len(shape) == 4 and axes[0] in _PLANE_AXES and axes[-1] == "S" and shape[-1] in (1, 3):
        z, h, w, c = shape
    elif len(shape) == 4 and axes[0] in _PLANE_AXES and axes[1] == "S" and shape[1] in (1, 3):
        z, c, h, w = shape  # planar RGB: samples before YX
        planar = True
    else:
        raise StackError(f"{path}: shape {shape} with axes {axes} is not a stack ZYX or ZYXS (grey or RGB)")
    try:
        store = tifffile.imread(path, aszarr=True, series=0, level=0)
        arr = zarr.open(store, mode="r")
    except Exception as exc:
        raise StackError(f"{path}: cannot open pixel data ({_first_line(exc)})") from None
    if tuple(arr.shape) != shape:
        raise StackError(f"{path}: pixel store shape {tuple(arr.shape)} disagrees with the header {shape}")
    stack = FocalStack([arr], str(path), (z, h, w, c), dtype, planes_um, pixel, rule, planar=planar)
    if planes_um is not None and len(planes_um) != z:
        stack.planes_um = None
    # A truncated file opens fine and fails on the missing data: touch the last pixel now,
    # so the error comes at open time and names the file.
    stack.read_raw([z - 1], Box(h - 1, w - 1, h, w))
    return stack


def _open_plane_files(paths: list[Path], rule: IntensityRule) -> FocalStack:
    import tifffile

    planes = []
    first: tuple | None = None
    for p in paths:
        try:
            if p.suffix.lower() in (".tif", ".tiff", ".btf", ".tf8"):
                arr = tifffile.imread(p, aszarr=True)
                import zarr

                data = zarr.open(arr, mode="r")
            else:
                from skimage import io as skio

                data = np.asarray(skio.imread(p))
        except Exception as exc:
            raise StackError(f"{p}: not a readable image ({_first_line(exc)})") from None
        shape = tuple(data.shape)
        if len(shape) == 3 and shape[-1] == 4:  # RGBA from PNG: drop alpha
            data = np.asarray(data)[..., :3]
            shape = data.shape
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[-1] not in (1, 3)):
            raise StackError(f"{p}: shape {shape} is not one plane (YX grey or YXS RGB)")
        if data.dtype not in (np.uint8, np.uint16):
            raise StackError(f"{p}: pixel type {data.dtype} is not supported, expected uint8 or uint16")
        key = (shape, np.dtype(data.dtype))
        if first is None:
            first = key
        elif key != first:
            raise StackError(
                f"{p}: plane of shape {shape} {data.dtype} does not match {paths[0]} ({first[0]} {first[1]})"
            )
        planes.append(data)
    assert first is not None
    shape = first[0]
    h, w = shape[:2]
    c = shape[2] if len(shape) == 3 else 1
    stack = FocalStack(
        planes, f"{paths[0]} (+{len(paths) - 1} planes)", (len(paths), h, w, c), first[1], None, None, rule
    )
    for z, p in enumerate(paths):
        try:
            stack.read_raw([z], Box(h - 1, w - 1, h, w))
        except StackError:
            raise StackError(f"{p}: cannot decode pixel data, file truncated or corrupt") from None
    return stack
