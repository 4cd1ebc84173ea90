"""One plane of a Z-stack as the slide to run: the `--plane` choice (a number or the sharpest) and its checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide.base import SlideError
from mfpi_deploy.slide.focus import sharpest_plane

SHARPEST = "sharpest"
# tifffile's names for an axis a file does not name: Q (a "shaped" file's unknown axis), I (a plain
# sequence of pages). A single such axis is read as Z when a plane is asked for: focal planes saved
# page by page with no axis metadata.
UNNAMED_AXES = ("Q", "I")
PlaneChoice = int | str | None  # a plane number, SHARPEST, or None (the file must be 2D)


def parse_plane(text: str) -> int | str:
    """`--plane` as given on the command line: a plane number (from 0) or 'sharpest'."""
    value = text.strip().lower()
    if value == SHARPEST:
        return SHARPEST
    try:
        number = int(value)
    except ValueError:
        raise MfpiError(f"--plane must be a plane number (0, 1, ...) or 'sharpest', got {text!r}") from None
    check_plane(number)
    return number


def check_plane(choice: PlaneChoice) -> None:
    """Refuse a choice no file can satisfy (a negative number, another word)."""
    if choice is None or choice == SHARPEST:
        return
    if not isinstance(choice, int) or isinstance(choice, bool) or choice < 0:
        raise MfpiError(f"--plane must be a plane number (0, 1, ...) or 'sharpest', got {choice!r}")


def resolve_plane(choice: PlaneChoice, count: int, read_block: Callable[[int], np.ndarray] | None) -> int | None:
    """The plane to run of an image with `count` z planes: None for a 2D image (count 1), else a
    number; SlideError for a Z-stack without a choice or a plane it does not have.
    `read_block(z)` reads the central block of plane z (used for 'sharpest')."""
    check_plane(choice)
    if isinstance(choice, int) and choice >= count:
        have = "a 2D image, plane 0 only" if count == 1 else f"the Z-stack has {count} planes, 0..{count - 1}"
        raise SlideError(f"plane {choice} does not exist ({have})")
    if count == 1:
        return None
    if choice is None:
        raise SlideError(
            f"a Z-stack of {count} planes; mfpi-run takes one 2D image: pass --plane N "
            f"(0..{count - 1}) or --plane sharpest to run one of them"
        )
    if choice == SHARPEST:
        if read_block is None:
            raise SlideError("cannot measure the planes' focus of this file")
        try:
            return sharpest_plane([read_block(z) for z in range(count)])
        except MfpiError as exc:
            raise SlideError(f"--plane sharpest: {exc}; pass --plane N (0..{count - 1})") from None
    return int(choice)
