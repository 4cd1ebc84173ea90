"""A DZI tile as bytes: pixels (h, w, grey or RGB uint8) encoded as PNG (lossless) or JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from mfpi_deploy.errors import MfpiError

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}


def encode(pixels: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """PNG (compression level 1: fast, lossless) or JPEG at `quality` (4:2:0 as viewers expect)."""
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=1)
    elif fmt in ("jpeg", "jpg"):
        image.save(buf, format="JPEG", quality=quality)
    else:
        raise MfpiError(f"tile format {fmt!r} is not jpeg or png")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Encoded tile -> (h, w, C) uint8 (tests and scripts)."""
    array = np.asarray(Image.open(io.BytesIO(data)))
    return array if array.ndim == 3 else array[..., None]
