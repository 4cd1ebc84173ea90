"""Simulated multi-focal bright-field cytology: stained cells at many depths, imaged through focus.

Physics kept:
- Specimen: cells (cytoplasm stained by eosin) with nuclei (haematoxylin) at random depths
  in a ~30 um thick specimen, with cell-to-cell and chromatin texture, clustered with empty
  background between clusters.
- Absorbance by Beer-Lambert in RGB: optical density = stain concentration x thickness x
  the stain's RGB absorbance vector (Ruifrok-Johnston vectors); transmission 10^-OD.
- Imaging: a 20x/0.75 NA objective at 0.243 um/pixel, planes 2.7 um apart; each depth
  layer is blurred by a defocus point-spread function for its distance from the focal
  plane: a geometric defocus disk (cone of the illumination NA in the mounting medium)
  convolved with the in-focus diffraction spot (Gaussian, sigma = 0.21 lambda / NA, per
  colour channel).
- Camera: shot noise (Poisson, finite full well), read noise, 8-bit quantisation.

Simplifications (stated, so nobody mistakes it for a full optical model):
- Incoherent, linear-in-absorbance imaging: each layer's optical density is blurred, the
  blurred densities are summed, and Beer-Lambert is applied once per pixel. Real
  partially coherent bright-field imaging also has phase effects (defocused transparent
  objects show bright/dark rims); these are ignored.
- Each cell is a thin object at one depth (its whole thickness in one layer), depths are
  quantised to layers `layer_step_um` apart; no scattering, no refraction at the
  cover glass, no spherical aberration, the geometric disk has no diffraction rings.
- One white illumination spectrum sampled at three wavelengths (R, G, B).

Everything is numpy/scipy FFT convolution (one FFT per layer, the defocus transfer
function evaluated analytically), so a 1024x1024x11 RGB stack takes a few seconds, and
the output is a deterministic function of the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft as sfft
from scipy.special import j1

# Ruifrok & Johnston (2001) optical density vectors (R, G, B) per unit stain.
HAEMATOXYLIN = np.array([0.650, 0.704, 0.286], np.float32)
EOSIN = np.array([0.072, 0.990, 0.105], np.float32)
WAVELENGTHS_UM = (0.61, 0.54, 0.47)


@dataclass(frozen=True)
class SimConfig:
    """What to simulate; defaults follow the paper's optics (20x/0.75, 0.243 um/px, 11 x 2.7 um)."""

    height: int = 512
    width: int = 512
    seed: int = 0
    planes: int = 11
    z_step_um: float = 2.7
    pixel_size_um: float = 0.243
    objective_na: float = 0.75
    illumination_na: float = 0.55  # condenser cone that sets the defocus blur of absorbers
    medium_index: float = 1.52  # mounting medium
    thickness_um: float = 30.0
    layer_step_um: float = 1.35
    cells_per_mpx: float = 150.0  # cells per million pixels of field
    clusters_per_mpx: float = 6.0
    scattered_fraction: float = 0.25  # cells placed uniformly instead of in clusters
    cell_radius_um: tuple[float, float] = (5.0, 10.0)
    nucleus_fraction: tuple[float, float] = (0.3, 0.55)
    haematoxylin_od: tuple[float, float] = (0.35, 0.9)
    eosin_od: tuple[float, float] = (0.08, 0.3)
    background: tuple[float, float, float] = (0.93, 0.92, 0.95)  # white level per channel
    full_well: float = 4000.0  # photo-electrons at white: shot noise
    read_noise: float = 0.003  # fraction of white, Gaussian

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError("height and width must be at least 16")
        if self.planes < 1:
            raise ValueError("planes must be positive")


def plane_positions_um(planes: int = 11, z_step_um: float = 2.7) -> list[float]:
    """Focal positions relative to the specimen's middle, most negative first."""
    c = (planes - 1) / 2
    return [round((i - c) * z_step_um, 4) for i in range(planes)]


def _freq_radius(h: int, w: int) -> np.ndarray:
    """Radial spatial frequency (cycles/pixel) on an rfft2 grid (h, w//2+1)."""
    fy = sfft.fftfreq(h).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(w).astype(np.float32)[None, :]
    return np.sqrt(fy * fy + fx * fx)


def defocus_radius_px(dz_um: float, cfg: SimConfig) -> float:
    """Radius of the geometric defocus disk of an absorber `dz_um` from focus, in pixels."""
    sin_t = min(cfg.illumination_na, cfg.objective_na) / cfg.medium_index
    return abs(dz_um) * sin_t / np.sqrt(1 - sin_t**2) / cfg.pixel_size_um


def defocus_otf(dz_um: float, freq: np.ndarray, cfg: SimConfig, wavelength_um: float) -> np.ndarray:
    """Transfer function of the defocus PSF (disk of the defocus radius * diffraction Gaussian).

    Radially symmetric, so it is evaluated on a fine 1D radial grid and interpolated.
    """
    sigma_px = 0.21 * wavelength_um / cfg.objective_na / cfg.pixel_size_um
    radial = np.linspace(0.0, float(freq.max()) + 1e-6, 8192, dtype=np.float64)
    profile = np.exp(-2 * np.pi**2 * sigma_px**2 * radial**2)
    r = defocus_radius_px(dz_um, cfg)
    if r > 1e-3:
        arg = 2 * np.pi * r * radial
        with np.errstate(invalid="ignore", divide="ignore"):
            profile = profile * np.where(arg > 1e-9, 2 * j1(arg) / np.maximum(arg, 1e-9), 1.0)
    return np.interp(freq, radial, profile).astype(np.float32)


def defocus_psf(dz_um: float, size: int, cfg: SimConfig, wavelength_um: float = 0.54) -> np.ndarray:
    """The PSF itself on a size x size grid (centred, sums to 1): for tests and plots."""
    otf = defocus_otf(dz_um, _freq_radius(size, size), cfg, wavelength_um)
    psf = sfft.irfft2(otf, s=(size, size))
    return np.fft.fftshift(psf).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sigma_px: float) -> np.ndarray:
    """Gaussian random field, low-passed to correlation length ~sigma_px, unit std."""
    f = sfft.rfft2(rng.standard_normal((h, w), dtype=np.float32))
    f *= np.exp(-2 * np.pi**2 * sigma_px**2 * _freq_radius(h, w) ** 2)
    out = sfft.irfft2(f, s=(h, w)).astype(np.float32)
    return out / (out.std() + 1e-8)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float, angle: float):
    """Bounding box slices and the projected thickness sqrt(1 - r^2) of an ellipsoid."""
    rmax = max(ry, rx)
    y0, y1 = max(int(cy - rmax) - 1, 0), min(int(cy + rmax) + 2, h)
    x0, x1 = max(int(cx - rmax) - 1, 0), min(int(cx + rmax) + 2, w)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / rx, (-s * dx + c * dy) / ry
    t = np.sqrt(np.clip(1 - u * u - v * v, 0, None))
    return (slice(y0, y1), slice(x0, x1)), t


def _render_specimen(cfg: SimConfig, rng: np.random.Generator, h: int, w: int, depths: np.ndarray) -> np.ndarray:
    """Optical density per layer and channel, (layers, 3, h, w) float32."""
    od = np.zeros((len(depths), 3, h, w), np.float32)
    area = h * w / 1e6
    n_cells = rng.poisson(cfg.cells_per_mpx * area)
    n_clusters = max(1, rng.poisson(cfg.clusters_per_mpx * area))
    centres = rng.uniform([0, 0], [h, w], size=(n_clusters, 2))
    spread = rng.uniform(20, 60, size=n_clusters) / cfg.pixel_size_um * 0.243 * 1.0
    tex_c = _smooth_noise(rng, h, w, 3.0)
    tex_n = _smooth_noise(rng, h, w, 1.2)
    px = cfg.pixel_size_um
    for _ in range(n_cells):
        if rng.random() < cfg.scattered_fraction:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        else:
            k = rng.integers(n_clusters)
            cy, cx = centres[k] + rng.normal(0, spread[k], size=2)
        layer = rng.integers(len(depths))
        r = rng.uniform(*cfg.cell_radius_um) / px
        elong = rng.uniform(0.7, 1.0)
        angle = rng.uniform(0, np.pi)
        cell = _ellipse(h, w, cy, cx, r, r * elong, angle)
        if cell is None:
            continue
        sl, t = cell
        e = rng.uniform(*cfg.eosin_od) * t * (1 + 0.25 * tex_c[sl])
        od[layer, :, sl[0], sl[1]] += EOSIN[:, None, None] * np.clip(e, 0, None)[None]
        nf = rng.uniform(*cfg.nucleus_fraction)
        off = rng.normal(0, 0.15 * r, size=2)
        nuc = _ellipse(h, w, cy + off[0], cx + off[1], r * nf, r * nf * rng.uniform(0.75, 1.0), rng.uniform(0, np.pi))
        if nuc is None:
            continue
        sl, t = nuc
        hval = rng.uniform(*cfg.haematoxylin_od) * t**0.5 * (1 + 0.35 * tex_n[sl])
        od[layer, :, sl[0], sl[1]] += HAEMATOXYLIN[:, None, None] * np.clip(hval, 0, None)[None]
    return od


def simulate_stack(cfg: SimConfig = SimConfig()) -> np.ndarray:
    """A simulated stack, uint8 (planes, height, width, 3), planes ordered most negative z first.

    Deterministic: the same config (seed included) gives the same bytes.
    """
    rng = np.random.default_rng(cfg.seed)
    planes_z = np.array(plane_positions_um(cfg.planes, cfg.z_step_um), np.float32)
    half = cfg.thickness_um / 2
    depths = np.arange(-half, half + 1e-6, cfg.layer_step_um, dtype=np.float32)
    max_dz = float(np.max(np.abs(planes_z[:, None] - depths[None, :])))
    pad = int(np.ceil(defocus_radius_px(max_dz, cfg))) + 16
    # FFT-friendly padded canvas so the circular convolution does not wrap cells around.
    hp = sfft.next_fast_len(cfg.height + 2 * pad, real=True)
    wp = sfft.next_fast_len(cfg.width + 2 * pad, real=True)
    od = _render_specimen(cfg, rng, hp, wp, depths)
    used = [i for i in range(len(depths)) if od[i].any()]
    freq = _freq_radius(hp, wp)
    dist = {round(float(z - d), 4) for z in planes_z for d in depths[used]}  # the OTF depends on |dz| only
    stack = np.empty((cfg.planes, cfg.height, cfg.width, 3), np.float32)
    for c in range(3):
        spectra = {i: sfft.rfft2(od[i, c], workers=1) for i in used}
        by_abs = {a: defocus_otf(a, freq, cfg, WAVELENGTHS_UM[c]) for a in {abs(d) for d in dist}}
        otfs = {d: by_abs[abs(d)] for d in dist}
        for k, z in enumerate(planes_z):
            acc = np.zeros(freq.shape, np.complex64)
            tmp = np.empty_like(acc)
            for i in used:
                np.multiply(spectra[i], otfs[round(float(z - depths[i]), 4)], out=tmp)
                acc += tmp
            blurred = sfft.irfft2(acc, s=(hp, wp))[pad : pad + cfg.height, pad : pad + cfg.width]
            stack[k, :, :, c] = cfg.background[c] * np.power(10.0, -np.clip(blurred, 0, None))
    noise_rng = np.random.default_rng([cfg.seed, 1])
    electrons = noise_rng.poisson(stack * cfg.full_well).astype(np.float32) / cfg.full_well
    electrons += noise_rng.normal(0, cfg.read_noise, size=stack.shape).astype(np.float32)
    return np.clip(np.rint(electrons * 255.0), 0, 255).astype(np.uint8)


def write_stack(
    path: str | Path, stack: np.ndarray, planes_um: Sequence[float], pixel_size_um: float, *, tile: int = 256
) -> Path:
    """Write a (Z, H, W, 3) or (Z, H, W) uint8/uint16 stack as tiled OME-TIFF (ZYXS / ZYX) with
    the plane positions and pixel size, the format `training.stack.open_stack` reads.
    Written to a temporary name and renamed, so a partial file never looks complete."""
    import os

    import tifffile

    path = Path(path)
    stack = np.asarray(stack)
    if stack.ndim not in (3, 4) or len(planes_um) != stack.shape[0]:
        raise ValueError(f"stack of shape {stack.shape} does not match {len(planes_um)} plane positions")
    rgb = stack.ndim == 4
    dz = float(planes_um[1] - planes_um[0]) if len(planes_um) > 1 else 1.0
    meta = {
        "axes": "ZYXS" if rgb else "ZYX",
        "PhysicalSizeX": pixel_size_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel_size_um,
        "PhysicalSizeYUnit": "µm",
        "PhysicalSizeZ": dz,
        "PhysicalSizeZUnit": "µm",
        "Plane": {"PositionZ": [float(z) for z in planes_um], "PositionZUnit": ["µm"] * len(planes_um)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    use_tile = tile if min(stack.shape[1], stack.shape[2]) >= tile else None
    tifffile.imwrite(
        tmp,
        stack,
        ome=True,
        photometric="rgb" if rgb else "minisblack",
        metadata=meta,
        tile=(use_tile, use_tile) if use_tile else None,
        compression="zlib",
    )
    os.replace(tmp, path)
    return path
