"""Tiles for the accuracy gates: crops of real microscope images and simulated tiles.

Real tiles come from TIFF images or stacks: the middle plane, 2x2-binned (the network sees a
low-resolution input), scaled to uint8 by its 0.1/99.9 percentiles, and replicated to 3
channels for RGB models. By default they come from the real images that ship with the
package (assets/calibration, with their licences), so an export measures the same wherever
it runs; `--calibration` adds the user's own. Simulated tiles come from the simulator
(mfpi_deploy.synth), deterministic by seed. INT8 activation ranges are calibrated on other
tiles than the gate measures (`quantization_tiles`: the next grid spots, other seeds), so
the gate sees what calibration did not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.synth import SimConfig, simulate_stack

CALIBRATION_DIR = Path(__file__).resolve().parents[1] / "assets" / "calibration"
QUANTIZATION_SEED = 1000  # simulated tiles for INT8 calibration: seeds apart from the gate's (0, 1, ...)


def is_shipped(path: Path) -> bool:
    """One of the real images shipped with the package (not the user's own)."""
    return Path(path).parent == CALIBRATION_DIR


def default_calibration_images() -> list[Path]:
    """The real images shipped with the package for the gates (sorted, so the same everywhere)."""
    return sorted(CALIBRATION_DIR.glob("*.tif"))


def to_uint8(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """Scale an image to uint8 between its `low` and `high` percentiles."""
    if image.dtype == np.uint8:
        return image
    lo, hi = np.percentile(image, [low, high])
    scaled = (image.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def bin2(image: np.ndarray) -> np.ndarray:
    """2x2 mean binning of a (H, W[, C]) image (odd edges dropped)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    x = image[:h, :w].astype(np.float32)
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4


def read_plane(path: Path) -> np.ndarray:
    """The middle plane of a TIFF (stack or single image) as a 2-D or (H, W, C) array."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            if axes.endswith(("YXS", "YXC")):  # colour image (possibly a stack of them)
                data = series.asarray()
                return data.reshape(-1, *data.shape[-3:])[data.reshape(-1, *data.shape[-3:]).shape[0] // 2]
            pages = len(tif.pages)
            return tif.pages[pages // 2].asarray()
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise MfpiError(f"{path}: not a readable TIFF calibration image ({exc})") from None


def per_image(count: int, images: int) -> int:
    """Tiles cut from each image so that `images` images give `count` tiles."""
    return max(1, -(-count // max(images, 1)))


def real_tiles(
    paths: list[Path],
    channels: int,
    side: int,
    count: int,
    *,
    low_res: bool = True,
    skip: int = 0,
) -> np.ndarray:
    """Up to `count` uint8 tiles (n, side, side, channels) cut on a regular grid from `paths`,
    leaving out each image's first `skip` grid spots. An image too small for one tile is left
    out if it is a shipped one (some are, at large gate tiles) and refused if it is the user's
    own (a gate without the image they named must not pass as one with it)."""
    tiles: list[np.ndarray] = []
    n_each = per_image(count, len(paths))
    for path in paths:
        plane = read_plane(Path(path))
        need = 2 * side if low_res else side
        if plane.shape[0] < need or plane.shape[1] < need:
            if is_shipped(path):
                continue
            raise MfpiError(
                f"{path}: {plane.shape[1]}x{plane.shape[0]} px is too small to calibrate on (a calibration "
                f"image needs {need}x{need} px at least)"
            )
        if low_res:
            plane = bin2(plane)
        plane = to_uint8(plane) if plane.dtype != np.uint8 else plane
        if plane.ndim == 3 and plane.shape[2] != channels:
            plane = plane[..., :3].mean(axis=2).astype(np.uint8) if channels == 1 else plane[..., :1]
        if plane.ndim == 2:
            plane = plane[..., None]
        if plane.shape[2] != channels:
            plane = np.repeat(plane, channels, axis=2)
        h, w = plane.shape[:2]
        # Deterministic positions spread over the image (centre first: foreground is likelier).
        grid = np.linspace(0, 1, 3)
        spots = [(0.5, 0.5)] + [(a, b) for a in grid for b in grid if (a, b) != (0.5, 0.5)]
        for fy, fx in spots[skip : skip + n_each]:
            y, x = int(fy * (h - side)), int(fx * (w - side))
            tiles.append(plane[y : y + side, x : x + side])
    return np.stack(tiles[:count]) if tiles else np.zeros((0, side, side, channels), np.uint8)


def simulated_tiles(channels: int, side: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` tiles (n, side, side, channels) from the simulator: the in-focus plane of a
    simulated stack, 2x2-binned like the network's input, grey if asked."""
    out = []
    for i in range(count):
        stack = simulate_stack(SimConfig(height=2 * side, width=2 * side, seed=seed + i))
        plane = np.rint(bin2(stack[stack.shape[0] // 2])).astype(np.uint8)
        if channels == 1:
            plane = np.rint(plane.mean(axis=2, keepdims=True)).astype(np.uint8)
        out.append(plane[..., :channels])
    return np.stack(out)


def calibration_set(
    channels: int, side: int, count: int, images: list[Path] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(real tiles, simulated tiles), `count` of each (real: from `images`, default the shipped ones)."""
    paths = list(images) if images else default_calibration_images()
    real = real_tiles(paths, channels, side, count) if paths else np.zeros((0, side, side, channels), np.uint8)
    return real, simulated_tiles(channels, side, count)


def quantization_tiles(
    channels: int, side: int, count: int, images: list[Path] | None = None, gate_count: int | None = None
) -> np.ndarray:
    """Tiles for INT8 calibration, none of them a gate tile: `count` real tiles from the grid spots
    after the gate's (`gate_count` tiles) and `count` simulated tiles from seeds QUANTIZATION_SEED+."""
    paths = list(images) if images else default_calibration_images()
    skip = per_image(gate_count or count, len(paths))
    real = (
        real_tiles(paths, channels, side, count, skip=skip) if paths else np.zeros((0, side, side, channels), np.uint8)
    )
    return np.concatenate([real, simulated_tiles(channels, side, count, seed=QUANTIZATION_SEED)])
