"""Open a slide file with the reader its format needs, with one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

from mfpi_deploy.slide.base import Slide, SlideError, SlideInputError
from mfpi_deploy.slide.openslide_slide import OPENSLIDE_SUFFIXES, OpenSlideSlide
from mfpi_deploy.slide.tiff import TiffSlide
from mfpi_deploy.slide.zstack import PlaneChoice, resolve_plane


def open_slide(
    path: str | Path, level: int = 0, *, series: int = 0, plane: PlaneChoice = None, allow_empty_tiles: bool = False
) -> Slide:
    """A lazy reader for `path` at pyramid `level` (TIFF family via tifffile, others via OpenSlide).

    `series` picks one image of a TIFF holding several; `plane` one z plane of a Z-stack (a
    number or 'sharpest'; a Z-stack without it is refused); `allow_empty_tiles` reads tiles the
    file stores no data for as black instead of refusing the file.
    """
    path = Path(path)
    if not path.exists():
        raise SlideInputError(f"{path}: no such file")
    if path.is_dir():
        raise SlideInputError(f"{path}: is a directory, not a slide")
    try:
        if path.suffix.lower() in OPENSLIDE_SUFFIXES:
            if series:
                raise SlideError("--series applies to TIFF files only")
            resolve_plane(plane, 1, None)  # 2D: plane 0 or 'sharpest' only
            return OpenSlideSlide(path, level)
        return TiffSlide(path, level, series=series, plane=plane, allow_empty_tiles=allow_empty_tiles)
    except SlideError as exc:
        raise SlideInputError(f"{path}: {exc}") from None
    except PermissionError:
        raise SlideInputError(f"{path}: permission denied") from None
