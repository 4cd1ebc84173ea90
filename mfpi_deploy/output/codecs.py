"""Tile codecs of the output: names users type (`jpeg:90`, `zstd`), how a tile is encoded, and the
fidelity rule of lossy ones (each tile's quality is raised until it is close enough to the lossless planes).

A TIFF tile is encoded here exactly as tifffile would encode it (same imagecodecs call and
arguments), so a finished file is assembled by copying these bytes. `encode_planes` takes another
`TileEncoder` on request (output/gpu_jpeg.py: JPEG on the GPU); the default is this CPU path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import imagecodecs
import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.opencv import cv2

NAMES = ("jpeg", "jpegxl", "zstd", "zlib", "none")
LOSSY = ("jpeg", "jpegxl")
# zstd 3 and zlib 3 (with the predictor) on output planes: 5.4:1 at 300 MB/s and 5.6:1 at 160 MB/s a
# core, where zstd 5 gains 6% for 2.5x the time and zlib 6 8% for 2x (measured on the sample's planes).
# JPEG 85: the OME-TIFF default's quality (mfpi_deploy.run.plan), so `--compression jpeg` is that default.
DEFAULT_LEVEL = {"jpeg": 85, "jpegxl": 90, "zstd": 3, "zlib": 3, "none": None}
LEVEL_RANGE = {"jpeg": (1, 100), "jpegxl": (1, 100), "zstd": (1, 22), "zlib": (1, 9)}
# Qualities a lossy tile steps up through when it misses the fidelity floor (from the chosen one).
QUALITY_LADDER = (90, 95, 98, 100)
# Without a model PSNR to add the margin to, lossy tiles must reach this PSNR against the lossless planes.
DEFAULT_FLOOR_DB = 40.0
# The floor is the model's own PSNR against truth + this margin: the codec's error is then at most a
# tenth of the model's (in MSE), costing at most 10*log10(1.1) = 0.41 dB of fidelity to truth.
FLOOR_MARGIN_DB = 10.0


@dataclass(frozen=True)
class Codec:
    """One codec and its level: JPEG/JPEG-XL quality (1-100), zstd (1-22) or zlib (1-9) level."""

    name: str
    level: int | None = None

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise MfpiError(f"unknown compression {self.name!r}: choose one of {', '.join(NAMES)}")
        if self.name == "none":
            if self.level is not None:
                raise MfpiError("compression none takes no level")
            return
        lo, hi = LEVEL_RANGE[self.name]
        if self.level is None or not lo <= self.level <= hi:
            raise MfpiError(f"{self.name} level must be {lo} to {hi}, got {self.level}")

    @property
    def lossless(self) -> bool:
        return self.name not in LOSSY

    @property
    def label(self) -> str:
        return self.name if self.level is None else f"{self.name}:{self.level}"

    def ladder(self) -> tuple[int | None, ...]:
        """Levels a tile tries in turn: the chosen one, then the higher rungs of the quality ladder."""
        if self.lossless:
            return (self.level,)
        return (self.level, *(q for q in QUALITY_LADDER if q > (self.level or 0)))


def parse_codec(text: str) -> Codec:
    """`jpeg`, `jpeg:85`, `zstd:9`, `none`, ... (the level defaults per codec)."""
    name, colon, level = text.strip().lower().partition(":")
    if name not in NAMES:
        raise MfpiError(f"unknown compression {text!r}: choose one of {', '.join(NAMES)} (e.g. jpeg:90)")
    if colon and not level:  # a level left out by mistake is not taken as "the default"
        example = f" (e.g. {name}:{DEFAULT_LEVEL[name]})" if DEFAULT_LEVEL[name] is not None else ""
        raise MfpiError(f"compression {text!r} names no level after ':'{example}")
    if not level:
        return Codec(name, DEFAULT_LEVEL[name])
    try:
        return Codec(name, int(level))
    except ValueError:
        raise MfpiError(f"compression level must be a whole number, got {text!r}") from None


def floor_db(model_psnr_db: float | None) -> float:
    """The PSNR a lossy tile must reach against the lossless planes (see FLOOR_MARGIN_DB)."""
    if model_psnr_db is None or not math.isfinite(model_psnr_db):
        return DEFAULT_FLOOR_DB
    return max(DEFAULT_FLOOR_DB, model_psnr_db + FLOOR_MARGIN_DB)


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of uint8 arrays (peak 255); inf when equal.

    The squared error is OpenCV's one-pass sum (integer blocks, exact for tiles of any size a
    run makes), without BLAS: a float `np.dot` here ran OpenBLAS's thread pool from every encoder
    thread, whose spinning threads took a third of the run's CPU from the encoders and the engine."""
    if a.shape != b.shape:
        raise ValueError(f"PSNR of arrays of different shapes {a.shape} and {b.shape}")
    flat = [np.ascontiguousarray(x).reshape(-1) for x in (a, b)]  # any shape, as one column for OpenCV
    sse = round(cv2.norm(flat[0], flat[1], cv2.NORM_L2SQR)) if a.size else 0
    mse = sse / max(a.size, 1)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


# ---- TIFF tiles -------------------------------------------------------------------------------


def tiff_options(codec: Codec, channels: int) -> dict:
    """tifffile.write keywords for pages of this codec (photometric, subsampling and predictor tags)."""
    options: dict = {"compression": None if codec.name == "none" else codec.name, "dtype": np.uint8}
    rgb = channels == 3
    options["photometric"] = "rgb" if rgb else "minisblack"
    if rgb:
        options["planarconfig"] = "contig"
    if codec.name in ("zstd", "zlib"):
        options["predictor"] = True  # horizontal differencing: about a third smaller on image tiles
    if codec.name == "jpeg" and rgb:
        options["subsampling"] = (2, 2)  # YCbCr 4:2:0, as scanners write it
    return options


def padded_tile(part: np.ndarray, side: int) -> np.ndarray:
    """`part` (h, w, C) of an edge tile in a new zeroed (side, side, C) tile, the size encoders take
    (TIFF tiles and Zarr chunks are stored whole; readers cut the part that lies in the image)."""
    tile = np.zeros((side, side, part.shape[-1]), np.uint8)
    tile[: part.shape[0], : part.shape[1]] = part
    return tile


def encode_tiff_tile(codec: Codec, tile: np.ndarray, level: int | None = None) -> bytes:
    """One TIFF tile (h, w, C) uint8, full tile size, as tifffile encodes it for `tiff_options`."""
    level = codec.level if level is None else level
    rgb = tile.shape[-1] == 3
    data = tile if rgb else tile[..., 0]
    if codec.name == "jpeg":
        if rgb:
            return imagecodecs.jpeg8_encode(
                data, level=level, colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)
            )
        return imagecodecs.jpeg8_encode(data, level=level)
    if codec.name == "jpegxl":
        return imagecodecs.jpegxl_encode(data, level=level)
    if codec.name == "none":
        return np.ascontiguousarray(data).tobytes()
    delta = imagecodecs.delta_encode(np.ascontiguousarray(data), axis=1)  # along the row, per sample
    if codec.name == "zstd":
        return imagecodecs.zstd_encode(delta, level=level)
    return imagecodecs.deflate_encode(delta, level=level)


# Encodes a batch of TIFF tiles of one codec at one level (None: the codec's own) into their bytes, in order.
TileEncoder = Callable[[Codec, Sequence[np.ndarray], int | None], list[bytes]]


def encode_tiff_tiles(codec: Codec, tiles: Sequence[np.ndarray], level: int | None = None) -> list[bytes]:
    """The default TileEncoder: each tile through `encode_tiff_tile`, on the CPU."""
    return [encode_tiff_tile(codec, tile, level) for tile in tiles]


def _encode(encoder: TileEncoder, codec: Codec, tiles: Sequence[np.ndarray], level: int | None) -> list[bytes]:
    """`encoder` on `tiles`, held to one byte string per tile (not called for no tiles)."""
    if not tiles:
        return []
    out = encoder(codec, tiles, level)
    if len(out) != len(tiles):
        raise ValueError(f"tile encoder returned {len(out)} tiles for {len(tiles)}")
    return out


def decode_lossy(codec: Codec, data: bytes, channels: int) -> np.ndarray:
    """A JPEG or JPEG-XL tile back to (h, w, C) uint8 (for the fidelity check)."""
    if codec.name == "jpeg":
        out = imagecodecs.jpeg8_decode(data)
    else:
        out = imagecodecs.jpegxl_decode(data)
    return out if out.ndim == 3 else out[..., None]


def psnr_to_json(value: float | None) -> float | str | None:
    """A PSNR as JSON keeps it (JSON has no infinity: an exact tile's is written "inf")."""
    return "inf" if value is not None and math.isinf(value) else value


def psnr_from_json(value: float | str | None) -> float | None:
    """The PSNR `psnr_to_json` wrote."""
    return math.inf if value == "inf" else value  # type: ignore[return-value]


@dataclass(frozen=True)
class EncodedTile:
    """A tile's bytes, the level it was encoded at, and its PSNR against the lossless tile (lossy only)."""

    data: bytes
    level: int | None
    psnr_db: float | None  # None: lossless, or not checked (pyramid overview levels)
    met_floor: bool = True


def _scored(
    codec: Codec,
    tile: np.ndarray,
    valid: tuple[int, int],
    level: int | None,
    floor: float,
    encoder: TileEncoder = encode_tiff_tiles,
) -> EncodedTile:
    """`tile` encoded at `level`, decoded and scored on its valid pixels against `floor`."""
    h, w = valid
    (data,) = _encode(encoder, codec, [tile], level)
    score = psnr_db(decode_lossy(codec, data, tile.shape[-1])[:h, :w], tile[:h, :w])
    return EncodedTile(data, level, score, score >= floor)


def encode_checked(
    codec: Codec,
    tile: np.ndarray,
    valid: tuple[int, int],
    floor: float | None,
    encoder: TileEncoder = encode_tiff_tiles,
) -> EncodedTile:
    """Encode `tile` (padded to the TIFF tile size; `valid` = (h, w) of real pixels); a lossy tile
    steps up the quality ladder until its PSNR on the valid pixels reaches `floor` (None: no check)."""
    if codec.lossless or floor is None:
        (data,) = _encode(encoder, codec, [tile], codec.level)
        return EncodedTile(data, codec.level, None)
    for level in codec.ladder():
        enc = _scored(codec, tile, valid, level, floor, encoder)
        if enc.met_floor:
            break
    return enc


def checked_planes(planes: int) -> tuple[int, ...]:
    """The planes whose tiles the fidelity check decodes and scores: the first, the centre (in focus)
    and the last. Planes of one tile position differ only in focus, so three stand for all eleven
    at about a third of the cost of decoding every plane."""
    return tuple(sorted({0, planes // 2, planes - 1}))


def encode_planes(
    codec: Codec,
    tiles: list[np.ndarray],
    valid: tuple[int, int],
    floor: float | None,
    encoder: TileEncoder = encode_tiff_tiles,
) -> list[EncodedTile]:
    """The tiles of every plane at one position: the checked planes climb the ladder to the floor,
    and every plane is then encoded at the highest quality one of them needed (the unchecked planes
    in one call of `encoder`, so a batched encoder gets them as one batch)."""
    if codec.lossless or floor is None:
        return [EncodedTile(data, codec.level, None) for data in _encode(encoder, codec, tiles, codec.level)]
    checked = {z: encode_checked(codec, tiles[z], valid, floor, encoder) for z in checked_planes(len(tiles))}
    level = max(enc.level or 0 for enc in checked.values())
    rest = [z for z in range(len(tiles)) if z not in checked]
    encoded = dict(zip(rest, _encode(encoder, codec, [tiles[z] for z in rest], level)))
    out = []
    for z, tile in enumerate(tiles):
        enc = checked.get(z)
        if enc is not None and enc.level != level:  # checked, and raised with its neighbours: score it again
            enc = _scored(codec, tile, valid, level, floor, encoder)
        elif enc is None:
            enc = EncodedTile(encoded[z], level, None)
        out.append(enc)
    return out


@dataclass(frozen=True)
class CodecReport:
    """What a run's tiles were encoded with, and how the lossy ones fared against their floor."""

    codec: str
    floor_db: float | None  # None: lossless
    tiles: int = 0  # tiles checked (full resolution; the checked planes at every tile position)
    min_psnr_db: float | None = None
    raised: int = 0  # checked tiles encoded above the chosen quality (their position needed it)
    below_floor: int = 0  # tiles that missed the floor even at the top of the ladder
    planes: str = ""  # which planes were checked, e.g. "0, 5, 10"
    top_level: int | None = None  # the highest quality a raised tile needed (None: none raised)

    @classmethod
    def of(cls, codec: Codec, floor: float, entries: object, planes: int = 0) -> CodecReport:
        """Summarise index entries (objects with level, psnr_db and met_floor; unchecked ones are skipped)."""
        if codec.lossless:
            return cls(codec.label, None)
        tiles = raised = below = 0
        low = math.inf
        top: int | None = None
        for e in entries:  # type: ignore[attr-defined]
            if e.psnr_db is None:
                continue
            tiles += 1
            if e.level != codec.level:
                raised += 1
                top = e.level if top is None else max(top, e.level)
            below += not e.met_floor
            low = min(low, e.psnr_db)
        checked = ", ".join(map(str, checked_planes(planes))) if planes else ""
        return cls(codec.label, floor, tiles, low if tiles else None, raised, below, checked, top)

    def line(self) -> str:
        if self.floor_db is None:
            return f"{self.codec} (lossless)"
        if not self.tiles:  # nothing was checked (no tile written yet, or a partial run of an older version)
            return f"{self.codec} (lossy; no tile checked against the lossless planes)"
        low = "inf" if self.min_psnr_db is None or math.isinf(self.min_psnr_db) else f"{self.min_psnr_db:.1f}"
        text = (
            f"{self.codec}; full-resolution tiles of planes {self.planes} checked against the lossless planes: "
            f"lowest {low} dB (floor {self.floor_db:.1f} dB), {self.raised} of {self.tiles} raised to a higher quality"
        )
        if self.top_level is not None:
            text += f" (up to {self.top_level})"
        return text + (f", {self.below_floor} below the floor even at quality 100" if self.below_floor else "")
