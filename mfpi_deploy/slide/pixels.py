"""Raw slide pixels to the engine's uint8 input: the stated rules for pixel types and channels.

- uint8: as is.
- uint16: scaled to 0..255 by round(v * 255 / max), with max given by the user (--input-max),
  else the file's MaxSampleValue tag if it states one (e.g. 4095 for 12-bit cameras), else
  65535; values above max clip to 255.
- other pixel types (float, signed, 32-bit): refused.
- alpha (RGBA, grey+alpha): dropped.
- grey slide, RGB model (or the reverse): refused unless conversion is asked for; grey -> RGB
  repeats the grey value, RGB -> grey takes the luminance 0.299 R + 0.587 G + 0.114 B (ITU-R 601).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfpi_deploy.errors import MfpiError

LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class PixelRule:
    """How raw pixels of one slide become engine input: scaling and channel mapping."""

    dtype: np.dtype
    samples: int
    channels: int  # the engine's
    max_value: int = 255

    @property
    def colour(self) -> int:
        """Colour samples without alpha (1 or 3)."""
        return 3 if self.samples >= 3 else 1

    def describe(self) -> str:
        parts = [f"{np.dtype(self.dtype).name}"]
        if np.dtype(self.dtype) != np.uint8:
            parts.append(f"scaled 0..{self.max_value} -> 0..255")
        if self.samples in (2, 4):
            parts.append("alpha dropped")
        if self.colour != self.channels:
            parts.append("grey -> RGB" if self.channels == 3 else "RGB -> grey (luminance)")
        return ", ".join(parts)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """(h, w, samples) raw -> (h, w, channels) uint8."""
        colour = raw[..., : self.colour]
        if colour.dtype != np.uint8:
            scaled = colour.astype(np.float32) * (255.0 / self.max_value)
            colour = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        if self.colour == self.channels:
            return np.ascontiguousarray(colour)
        if self.channels == 3:
            return np.repeat(colour, 3, axis=-1)
        grey = colour.astype(np.float32) @ LUMA_601
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def pixel_rule(
    dtype: np.dtype,
    samples: int,
    channels: int,
    *,
    convert_channels: bool = False,
    max_value: int | None = None,
    where: str = "input",
) -> PixelRule:
    """The rule for a slide's pixels, or MfpiError saying why they cannot be used."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        top = 255
    elif dtype == np.uint16:
        top = int(max_value) if max_value and 0 < max_value <= 65535 else 65535
    else:
        raise MfpiError(f"{where}: unsupported pixel type {dtype.name} (mfpi-run takes uint8 or uint16 images)")
    if samples not in (1, 2, 3, 4):
        raise MfpiError(f"{where}: unsupported number of samples per pixel ({samples}); expected grey, RGB or RGBA")
    colour = 3 if samples >= 3 else 1
    if colour != channels and not convert_channels:
        have = "RGB" if colour == 3 else "grey"
        want = "RGB" if channels == 3 else "grey"
        raise MfpiError(
            f"{where}: a {have} image but the engine takes {want} input; "
            f"pass --convert-channels to convert, or use a {have} model"
        )
    return PixelRule(dtype=dtype, samples=samples, channels=channels, max_value=top)
