"""JPEG tiles encoded on the GPU with nvImageCodec (the optional extra `gpu-jpeg`), so tiles that are
already on the device need not come back to the host raw to be encoded there.

`GpuJpegEncoder` is a `codecs.TileEncoder`: a batch of (h, w, C) uint8 tiles (CUDA arrays through
`__cuda_array_interface__`, or host arrays) becomes the same kind of TIFF JPEG tile as the CPU path
writes (baseline, YCbCr 4:2:0 for RGB, one component for grey), and each stream's header is checked
(`check_jpeg`) before it is kept, so a stream in another layout is refused rather than written.
Its bytes are not the CPU path's bytes: a run, or a resumed one, keeps one encoder throughout.

nvImageCodec Python API as documented for 0.7 and later (https://docs.nvidia.com/cuda/nvimagecodec/,
Python API reference; the docstrings in NVIDIA/nvImageCodec v0.8.0 python/encoder.cpp,
encode_params.cpp, code_stream.cpp and module.cpp):
    Encoder(device_id=..., backends=[Backend(BackendKind.GPU_ONLY)])  (device_id left out: the current device)
    Encoder.encode(image_s, codec, *, params=None, cuda_stream=0) -> list of CodeStream or None
    EncodeParams(quality_type=QualityType.QUALITY, quality_value=1..100,
                 chroma_subsampling=ChromaSubsampling.CSS_420 | CSS_GRAY,
                 jpeg_encode_params=JpegEncodeParams(progressive=False, optimized_huffman=False))
    as_images(sources, cuda_stream=0) -> list of Image (HWC; __cuda_array_interface__ or __array_interface__)
    CodeStream: the buffer protocol gives the `size` bytes of the encoded stream.
(0.5 and older took EncodeParams(quality=...) and returned bytes: not supported.)
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.codecs import Codec

INSTALL_HINT = "pip install 'mfpi-deploy[gpu-jpeg]' on a machine with an NVIDIA GPU"
# Tiles per Encoder.encode call: 11 planes of a tile position fit in one, and 64 RGB 256 px tiles are 12 MiB.
DEFAULT_BATCH = 64
# (horizontal, vertical) sampling factor of each component, as codecs.tiff_options tags the pages:
# RGB as YCbCr 4:2:0 (Y 2x2, Cb and Cr 1x1), grey as a single component.
SAMPLING: dict[int, tuple[tuple[int, int], ...]] = {3: ((2, 2), (1, 1), (1, 1)), 1: ((1, 1),)}
SOF_BASELINE = 0xC0
# Start-of-frame markers: C0-CF but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and RST0-7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})

__all__ = ["GpuJpegEncoder", "JpegLayout", "check_jpeg", "jpeg_layout", "load_nvimgcodec"]


def load_nvimgcodec() -> ModuleType:
    """nvidia.nvimgcodec, or an MfpiError that says how to install it."""
    try:
        return importlib.import_module("nvidia.nvimgcodec")
    except ImportError as exc:
        raise MfpiError(f"GPU JPEG encoding needs nvImageCodec ({exc}): {INSTALL_HINT}") from None


# ---- pure logic: parameters, batches, tile shapes ------------------------------------------------


@dataclass(frozen=True)
class JpegSpec:
    """What a batch is encoded to: JPEG quality and the component layout of its channel count."""

    quality: int
    channels: int

    @property
    def sampling(self) -> tuple[tuple[int, int], ...]:
        return SAMPLING[self.channels]


def jpeg_spec(codec: Codec, channels: int, level: int | None = None) -> JpegSpec:
    """The spec of `codec` at `level` (None: its own) for tiles of `channels`; only JPEG, RGB or grey."""
    if codec.name != "jpeg":
        raise MfpiError(f"GPU tile encoding writes JPEG only, not {codec.label}")
    if channels not in SAMPLING:
        raise MfpiError(f"GPU JPEG encodes RGB or grey tiles, not {channels} channels")
    quality = codec.level if level is None else level
    Codec("jpeg", quality)  # the 1-100 range, with the CPU path's message
    return JpegSpec(int(quality), channels)  # type: ignore[arg-type]


def encode_options(spec: JpegSpec) -> dict[str, Any]:
    """EncodeParams keywords by name (enum members as their names): quality on the JPEG 1-100 scale,
    4:2:0 or grey sampling, baseline with the standard Huffman tables."""
    return {
        "quality_type": "QUALITY",
        "quality_value": float(spec.quality),
        "chroma_subsampling": "CSS_420" if spec.channels == 3 else "CSS_GRAY",
        "progressive": False,
        "optimized_huffman": False,
    }


def encode_params(nv: ModuleType, spec: JpegSpec) -> Any:
    """nvimgcodec.EncodeParams for `spec` (the names of `encode_options` looked up in the module).

    color_spec stays UNCHANGED (its default): nvJPEG writes YCbCr from RGB input whatever the output
    colour spec says (v0.8.0 extensions/nvjpeg/cuda_encoder.cpp reads only the input's); the
    subsampling sets the layout, and check_jpeg holds every stream to it."""
    o = encode_options(spec)
    return nv.EncodeParams(
        quality_type=getattr(nv.QualityType, o["quality_type"]),
        quality_value=o["quality_value"],
        chroma_subsampling=getattr(nv.ChromaSubsampling, o["chroma_subsampling"]),
        jpeg_encode_params=nv.JpegEncodeParams(progressive=o["progressive"], optimized_huffman=o["optimized_huffman"]),
    )


def batches(n: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges that cover n items in runs of at most `size`."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def tile_shape(tile: Any) -> tuple[int, int, int]:
    """(h, w, C) of a uint8 HWC tile whose rows nvImageCodec can wrap: a device array by its
    __cuda_array_interface__, a host one by its __array_interface__ (pixels of a row contiguous)."""
    iface = getattr(tile, "__cuda_array_interface__", None) or getattr(tile, "__array_interface__", None)
    if iface is None:
        raise MfpiError(f"GPU JPEG takes CUDA or NumPy arrays, not {type(tile).__name__}")
    shape, typestr, strides = tuple(iface["shape"]), str(iface["typestr"]), iface.get("strides")
    if len(shape) != 3 or typestr[1:] != "u1":
        raise MfpiError(f"GPU JPEG encodes (h, w, C) uint8 tiles, got shape {shape} of type {typestr}")
    if strides is not None and (strides[2] != 1 or strides[1] != shape[2]):
        raise MfpiError(f"GPU JPEG needs the pixels of a row contiguous, got strides {tuple(strides)}")
    return shape  # type: ignore[return-value]


# ---- the stream check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JpegLayout:
    """A JPEG stream's frame header: its SOF marker, precision, size and each component's sampling."""

    sof: int
    precision: int
    height: int
    width: int
    sampling: tuple[tuple[int, int], ...]
    component_ids: tuple[int, ...]
    adobe_transform: int | None  # APP14 "Adobe" colour transform (0: not YCbCr), None: no such segment


def jpeg_layout(data: bytes) -> JpegLayout:
    """Parse the markers of a JPEG stream up to its scan; ValueError when it is not a whole JPEG stream."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("no SOI marker at the start")
    if data[-2:] != b"\xff\xd9":
        raise ValueError("no EOI marker at the end")
    frames: list[tuple[int, bytes]] = []
    adobe: int | None = None
    i = 2
    while True:
        if i + 1 >= len(data) or data[i] != 0xFF:
            raise ValueError(f"no marker at byte {i}")
        while data[i + 1] == 0xFF:  # fill bytes
            i += 1
        marker = data[i + 1]
        if marker in _STANDALONE:
            i += 2
            continue
        if marker == 0xD9:
            raise ValueError("EOI before any scan")
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i + 4 : i + 2 + length]
        if length < 2 or len(segment) != length - 2:
            raise ValueError(f"marker 0x{marker:02X} at byte {i} runs past the end")
        if marker in _SOF:
            frames.append((marker, segment))
        elif marker == 0xEE and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe = segment[11]
        elif marker == 0xDA:
            break
        i += 2 + length
    if len(frames) != 1:
        raise ValueError(f"{len(frames)} frame headers (SOF) before the scan, not 1")
    marker, sof = frames[0]
    count = sof[5] if len(sof) >= 6 else 0
    if count == 0 or len(sof) != 6 + 3 * count:
        raise ValueError("frame header (SOF) of the wrong length")
    comps = [sof[6 + 3 * k : 9 + 3 * k] for k in range(count)]
    return JpegLayout(
        sof=marker,
        precision=sof[0],
        height=int.from_bytes(sof[1:3], "big"),
        width=int.from_bytes(sof[3:5], "big"),
        sampling=tuple((c[1] >> 4, c[1] & 0x0F) for c in comps),
        component_ids=tuple(c[0] for c in comps),
        adobe_transform=adobe,
    )


def layout_problem(layout: JpegLayout, spec: JpegSpec, size: tuple[int, int]) -> str | None:
    """Why a stream of `layout` is not the TIFF tile `spec` and `size` (h, w) call for; None when it is."""
    if layout.sof != SOF_BASELINE:
        return f"frame is SOF{layout.sof - 0xC0}, not baseline (SOF0)"
    if layout.precision != 8:
        return f"{layout.precision}-bit samples, not 8"
    if (layout.height, layout.width) != tuple(size):
        return f"{layout.height}x{layout.width} px, not the tile's {size[0]}x{size[1]}"
    if len(layout.sampling) != spec.channels:
        return f"{len(layout.sampling)} components, not {spec.channels}"
    if layout.sampling != spec.sampling:
        return f"sampling factors {layout.sampling}, not {spec.sampling} (the pages' YCbCr subsampling tag)"
    if spec.channels == 3 and (layout.adobe_transform == 0 or layout.component_ids == tuple(b"RGB")):
        return "components stored as RGB, not YCbCr"
    return None


def check_jpeg(data: bytes, spec: JpegSpec, size: tuple[int, int]) -> bytes:
    """`data` when it is a baseline JPEG stream of `spec`'s layout and `size`; else MfpiError."""
    try:
        problem = layout_problem(jpeg_layout(data), spec, size)
    except ValueError as exc:
        problem = str(exc)
    if problem:
        raise MfpiError(f"GPU JPEG tile refused: {problem}")
    return data


# ---- the encoder --------------------------------------------------------------------------------


def stream_bytes(stream: Any) -> bytes:
    """The bytes of one encoded CodeStream (None: nvImageCodec could not encode that image)."""
    if stream is None:
        raise MfpiError("nvImageCodec encoded no JPEG for a tile (is its GPU JPEG encoder, nvJPEG, installed?)")
    return bytes(memoryview(stream))


class GpuJpegEncoder:
    """A codecs.TileEncoder: JPEG tiles encoded in batches by nvImageCodec's GPU encoder (nvJPEG).

    Host tiles are copied to the device by nvImageCodec; device tiles are read where they are, after
    `cuda_stream` (the stream their producer wrote them on; 0: the default stream). `device_id`
    None: the current CUDA device.
    """

    def __init__(self, device_id: int | None = None, batch: int = DEFAULT_BATCH, cuda_stream: int = 0) -> None:
        batches(0, batch)  # refuse a batch size below 1 now, not at the first tile
        self._nv = nv = load_nvimgcodec()
        device = {} if device_id is None else {"device_id": device_id}
        # GPU_ONLY: no quiet fallback to a CPU encoder (OpenCV's), which is not what this is for.
        self._encoder = nv.Encoder(**device, backends=[nv.Backend(nv.BackendKind.GPU_ONLY)])
        self.batch, self.cuda_stream = batch, cuda_stream

    def __call__(self, codec: Codec, tiles: Sequence[Any], level: int | None = None) -> list[bytes]:
        if not tiles:
            return []
        shapes = [tile_shape(t) for t in tiles]
        channels = {s[2] for s in shapes}
        if len(channels) != 1:
            raise MfpiError(f"one GPU JPEG batch mixes tiles of {sorted(channels)} channels")
        spec = jpeg_spec(codec, channels.pop(), level)
        params = encode_params(self._nv, spec)
        out: list[bytes] = []
        for lo, hi in batches(len(tiles), self.batch):
            images = self._nv.as_images(list(tiles[lo:hi]), cuda_stream=self.cuda_stream)
            streams = self._encoder.encode(images, "jpeg", params=params, cuda_stream=self.cuda_stream)
            if len(streams) != hi - lo:
                raise MfpiError(f"nvImageCodec returned {len(streams)} streams for {hi - lo} tiles")
            out += [check_jpeg(stream_bytes(s), spec, shapes[lo + k][:2]) for k, s in enumerate(streams)]
        return out
