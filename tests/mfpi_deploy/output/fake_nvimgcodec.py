"""A stand-in for nvidia.nvimgcodec (0.7+ Python API shape) that encodes JPEG on the host with imagecodecs.

It takes the same names and keywords as the real module for what output/gpu_jpeg.py calls, follows
the chroma subsampling it is given the way nvJPEG does (4:2:0 / 4:4:4 YCbCr, grey), returns
CodeStream-like buffers (not bytes), None where the real encoder refuses an image, and records each
encode call. `DeviceArray` stands in for a CUDA array: it has only __cuda_array_interface__ (and the
host copy the stand-in reads in place of device memory).
"""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace
from typing import Any

import imagecodecs
import numpy as np

QualityType = SimpleNamespace(DEFAULT="DEFAULT", LOSSLESS="LOSSLESS", QUALITY="QUALITY", PSNR="PSNR")
ChromaSubsampling = SimpleNamespace(
    CSS_444="CSS_444", CSS_422="CSS_422", CSS_420="CSS_420", CSS_440="CSS_440", CSS_GRAY="CSS_GRAY"
)
ColorSpec = SimpleNamespace(UNCHANGED="UNCHANGED", SRGB="SRGB", SYCC="SYCC", GRAY="GRAY")
BackendKind = SimpleNamespace(CPU_ONLY="CPU_ONLY", GPU_ONLY="GPU_ONLY", HYBRID_CPU_GPU="HYBRID", HW_GPU_ONLY="HW")
_FACTORS = {"CSS_444": (1, 1), "CSS_422": (2, 1), "CSS_420": (2, 2), "CSS_440": (1, 2)}


class DeviceArray:
    """A 'CUDA array': only __cuda_array_interface__ (version 3) is visible to the code under test."""

    def __init__(self, host: np.ndarray) -> None:
        self._host = np.ascontiguousarray(host)

    @property
    def __cuda_array_interface__(self) -> dict:
        return {
            "shape": self._host.shape,
            "typestr": self._host.dtype.str,
            "data": (0xDEAD0000, False),
            "strides": None,
            "version": 3,
        }


class Backend:
    def __init__(self, backend_kind: str = "GPU_ONLY", load_hint: float = 1.0, load_hint_policy: Any = None) -> None:
        self.backend_kind = backend_kind


class JpegEncodeParams:
    def __init__(self, progressive: bool = False, optimized_huffman: bool = False) -> None:
        self.progressive, self.optimized_huffman = progressive, optimized_huffman


class EncodeParams:
    def __init__(
        self,
        quality_type: str = "DEFAULT",
        quality_value: float = 0,
        color_spec: str = "UNCHANGED",
        chroma_subsampling: str | None = None,
        jpeg_encode_params: JpegEncodeParams | None = None,
        jpeg2k_encode_params: Any = None,
        tile_width: int | None = None,
        tile_height: int | None = None,
    ) -> None:
        self.quality_type, self.quality_value = quality_type, quality_value
        self.color_spec, self.chroma_subsampling = color_spec, chroma_subsampling
        self.jpeg_params = jpeg_encode_params or JpegEncodeParams()


class Image:
    def __init__(self, pixels: np.ndarray, on_device: bool) -> None:
        if pixels.ndim != 3:
            raise ValueError("the image must have a three-dimensional shape in the HWC layout")
        self.pixels, self.on_device = pixels, on_device
        self.shape = pixels.shape


class CodeStream(bytearray):
    """An encoded stream: the buffer protocol gives its bytes, like the real CodeStream."""

    @property
    def size(self) -> int:
        return len(self)


def as_image(source: Any, cuda_stream: int = 0, *, sample_format: Any = None, color_spec: Any = None) -> Image:
    if hasattr(source, "__cuda_array_interface__"):
        return Image(source._host, on_device=True)
    if hasattr(source, "__array_interface__"):
        return Image(np.asarray(source), on_device=False)
    raise TypeError(f"cannot wrap {type(source).__name__} as an image")


def as_images(sources: list, cuda_stream: int = 0, *, sample_format: Any = None, color_spec: Any = None) -> list:
    return [as_image(s, cuda_stream, sample_format=sample_format, color_spec=color_spec) for s in sources]


class Encoder:
    """Encoder(device_id, max_num_cpu_threads, backends, options).encode(image_s, codec, *, params, ...)."""

    calls: list[dict] = []  # every encode call of every encoder of the installed module
    force_subsampling: str | None = None  # set to misbehave: ignore the requested chroma subsampling
    fail_image: int | None = None  # set to misbehave: return None for this image of each batch

    def __init__(
        self, device_id: int = -1, max_num_cpu_threads: int = 0, backends: list | None = None, options: str = ""
    ) -> None:
        self.device_id, self.backends = device_id, backends

    def encode(
        self, image_s: Any, codec: str, *, code_stream_s: Any = None, params: EncodeParams | None = None, cuda_stream=0
    ) -> Any:
        single = not isinstance(image_s, list)
        images = [image_s] if single else image_s
        params = params or EncodeParams()
        type(self).calls.append({"images": len(images), "codec": codec, "params": params, "stream": cuda_stream})
        out = [self._one(img, codec, params) if k != self.fail_image else None for k, img in enumerate(images)]
        return out[0] if single else out

    def _one(self, image: Image, codec: str, params: EncodeParams) -> CodeStream | None:
        if codec.lstrip(".") not in ("jpeg", "jpg") or params.jpeg_params.progressive:
            return None
        level = int(params.quality_value) if params.quality_type == "QUALITY" else 75
        px = image.pixels
        channels = px.shape[-1]
        css = self.force_subsampling or params.chroma_subsampling or ("CSS_GRAY" if channels < 3 else "CSS_444")
        if css == "CSS_GRAY":
            grey = px[..., 0] if channels == 1 else (px @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
            return CodeStream(imagecodecs.jpeg8_encode(grey, level=level))
        if channels != 3:
            return None  # nvJPEG: a grey image must be encoded as grey
        factors = _FACTORS[css]
        data = imagecodecs.jpeg8_encode(px, level=level, colorspace="RGB", outcolorspace="YCBCR", subsampling=factors)
        return CodeStream(data)


def install(monkeypatch: Any) -> ModuleType:
    """Put the stand-in in sys.modules as nvidia.nvimgcodec (undone by monkeypatch); returns it."""
    module = ModuleType("nvidia.nvimgcodec")
    encoder = type("Encoder", (Encoder,), {"calls": []})  # fresh call record and behaviour per install
    for name, value in dict(
        QualityType=QualityType,
        ChromaSubsampling=ChromaSubsampling,
        ColorSpec=ColorSpec,
        BackendKind=BackendKind,
        Backend=Backend,
        JpegEncodeParams=JpegEncodeParams,
        EncodeParams=EncodeParams,
        CodeStream=CodeStream,
        Image=Image,
        as_image=as_image,
        as_images=as_images,
        Encoder=encoder,
    ).items():
        setattr(module, name, value)
    parent = ModuleType("nvidia")
    parent.nvimgcodec = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nvidia", parent)
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", module)
    return module
