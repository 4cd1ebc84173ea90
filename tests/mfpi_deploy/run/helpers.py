"""Shared test helpers for the run, slide and output tests: tiny models and generated slides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.backends.torch_backend import TorchBackend
from mfpi_deploy.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from mfpi_deploy.models import create_model


def tiny_checkpoint(path: Path, *, channels: int = 3, width: int = 4, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = create_model("mfpinet", in_channels=channels, width=width)
    save_checkpoint(model, ModelCard("mfpinet", {"in_channels": channels, "width": width}), path)
    return path


def tiny_backend(tmp_path: Path, *, channels: int = 3, width: int = 4) -> TorchBackend:
    torch.set_num_threads(1)
    ckpt = tiny_checkpoint(tmp_path / f"ckpt-c{channels}-w{width}", channels=channels, width=width)
    return TorchBackend(load_checkpoint(ckpt))


def textured(height: int, width: int, channels: int = 3, seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    """A smooth-plus-detail image (random noise alone makes networks output near-constants)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([np.sin(yy / (7 + 3 * c)) * np.cos(xx / (11 + 2 * c)) for c in range(channels)], -1)
    img = 0.5 + 0.35 * base + 0.15 * rng.random((height, width, channels))
    top = np.iinfo(dtype).max
    out = np.clip(img * top, 0, top).round().astype(dtype)
    return out if channels > 1 else out[..., 0]


def write_tiff(path: Path, image: np.ndarray, *, pixel_size_um: float | None = 0.5, **kwargs: object) -> Path:
    extra: dict = {}
    if pixel_size_um:
        extra = dict(resolution=(1e4 / pixel_size_um, 1e4 / pixel_size_um), resolutionunit="CENTIMETER")
    photometric = "rgb" if image.ndim == 3 and image.shape[-1] in (3, 4) else "minisblack"
    kwargs.setdefault("photometric", photometric)
    tifffile.imwrite(path, image, **extra, **kwargs)
    return path


def focal_stack(height: int, width: int, planes: int = 5, sharp: int = 3, channels: int = 3) -> np.ndarray:
    """(planes, h, w[, channels]) uint8: `textured` in focus at plane `sharp`, blurred more with each step away."""
    from scipy.ndimage import gaussian_filter

    image = textured(height, width, channels).astype(np.float32)
    sigma = (1.0, 1.0, 0.0) if channels > 1 else 1.0
    stack = [gaussian_filter(image, np.multiply(sigma, abs(z - sharp))) if z != sharp else image for z in range(planes)]
    return np.clip(np.rint(stack), 0, 255).astype(np.uint8)


def write_zstack(path: Path, stack: np.ndarray, *, pixel_size_um: float | None = 0.5) -> Path:
    """A Z-stack TIFF (OME-TIFF when the name ends in .ome.tif) with Z as its first axis."""
    rgb = stack.ndim == 4
    return write_tiff(
        path,
        stack,
        pixel_size_um=pixel_size_um,
        metadata={"axes": "ZYXS" if rgb else "ZYX"},
        photometric="rgb" if rgb else "minisblack",
    )


class FailingBackend(Backend):
    """Wraps a backend and raises `exc` on call number `fail_at` (0-based): a crash at tile k."""

    def __init__(self, inner: Backend, fail_at: int, exc: BaseException) -> None:
        self.inner, self.fail_at, self.exc, self.calls = inner, fail_at, exc, 0
        self.kind, self.spec, self.identity = inner.kind, inner.spec, inner.identity

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        if self.calls == self.fail_at:
            self.calls += 1
            raise self.exc
        self.calls += 1
        return self.inner.run(tiles, dpm)


# A small run: a 200x232 input at tile 160 (core 64 px: 128 px output tiles), 464x400 output, a 2-level pyramid
SMALL_RUN = dict(tile=160, batch=2, progress=False, log=lambda m: None)
