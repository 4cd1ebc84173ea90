"""A sample slide for trying mfpi-run: the training simulator's in-focus plane, degraded as the
model's input (bicubic /2 then 5x5 Gaussian blur), saved as a pyramidal OME-TIFF with its pixel size."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from mfpi_deploy.degrade import degrade_uint8
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.synth import SimConfig, plane_positions_um, simulate_stack


@dataclass(frozen=True)
class Sample:
    """The sample slide and, for comparison, the simulated ground-truth stack it came from."""

    image: np.ndarray  # uint8 (size, size, 3): what mfpi-run takes
    truth: np.ndarray  # uint8 (planes, 2 size, 2 size, 3): the simulated full-resolution stack
    pixel_size_um: float  # of `image` (twice the simulation's)
    planes_um: list[float]


def make_sample(size: int = 1024, seed: int = 0) -> Sample:
    """Simulate a (2 size)^2 stack and degrade its middle plane to a size x size input."""
    if size < 16 or size % 8:
        raise MfpiError(f"--sample-size must be a multiple of 8 and at least 16, got {size}")
    cfg = SimConfig(height=2 * size, width=2 * size, seed=seed)
    truth = simulate_stack(cfg)
    image = degrade_uint8(truth[cfg.planes // 2])
    return Sample(image, truth, 2 * cfg.pixel_size_um, plane_positions_um(cfg.planes, cfg.z_step_um))


def write_sample(path: str | Path, size: int = 1024, seed: int = 0, *, overwrite: bool = False) -> str:
    """Write the sample slide as a tiled, pyramidal RGB OME-TIFF; returns a one-line description."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise MfpiError(f"{path} exists; pass --overwrite to replace it")
    sample = make_sample(size, seed)
    write_pyramidal_rgb(path, sample.image, sample.pixel_size_um)
    return f"{size}x{size} RGB, {sample.pixel_size_um:.3f} µm/px, simulated cytology (seed {seed})"


def write_pyramidal_rgb(path: Path, image: np.ndarray, pixel_size_um: float) -> None:
    """A tiled OME-TIFF with 2x sub-resolutions in SubIFDs, written to a temporary name first."""
    levels = [image]
    while max(levels[-1].shape[:2]) > 512:
        levels.append(levels[-1][::2, ::2])
    tmp = path.with_name(f".{path.name}.tmp")
    meta = {"axes": "YXS", "PhysicalSizeX": pixel_size_um, "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": pixel_size_um, "PhysicalSizeYUnit": "µm"}
    opts = dict(photometric="rgb", tile=(256, 256), compression="zlib")
    with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
        tif.write(levels[0], subifds=len(levels) - 1, metadata=meta, **opts)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, **opts)
    os.replace(tmp, path)
