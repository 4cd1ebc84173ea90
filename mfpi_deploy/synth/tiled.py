"""The simulator of `simulate.py`, window by window: any rectangle of an arbitrarily large slide
in memory bounded by the window, not the slide (what `mfpi-run --make-sample` needs).

The same physics and parameters as `simulate_stack` (cells at depths, Beer-Lambert stains,
defocus PSF per layer, camera noise), made independent of how the slide is cut:

- The specimen is a table of cells drawn once for the whole canvas (a few numbers per cell);
  a window renders only the cells that reach into it.
- The cell textures are Gaussian random fields made from white noise drawn per fixed
  256-pixel block (seeded by the block's position) and a truncated Gaussian filter,
  normalised by the filter's norm (the field's exact standard deviation).
- The defocus blur of a window is computed on the window plus a margin wider than the PSF,
  so the window's pixels equal those of a whole-slide computation up to float rounding.
- Camera noise: shot noise (Gaussian approximation of Poisson at a full well of thousands
  of electrons) plus read noise, from per-block standard normals, so it does not depend on
  the windows either.

The result is a deterministic function of the config (seed included) and the window
grid; it is not the same random slide as `simulate_stack` with the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import correlate1d

from mfpi_deploy.synth.simulate import (
    EOSIN,
    HAEMATOXYLIN,
    WAVELENGTHS_UM,
    SimConfig,
    _ellipse,
    _freq_radius,
    defocus_otf,
    defocus_radius_px,
)

BLOCK = 256  # side of the blocks random fields are drawn in
_OFFSET = 1 << 20  # keeps block indices (which may be negative) non-negative in seeds
_TEXTURES = {"cytoplasm": 3.0, "chromatin": 1.2}  # correlation lengths (px), as in simulate_stack


@dataclass(frozen=True)
class Window:
    """A half-open rectangle of the simulated slide, truth pixels."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


class TiledSimulation:
    """The simulated slide of `cfg` (height x width truth pixels), rendered window by window.

    `planes_um`: the focal positions to image (default: all of cfg's planes).
    """

    def __init__(self, cfg: SimConfig, planes_um: Sequence[float] | None = None) -> None:
        self.cfg = cfg
        self.planes_um = np.array(planes_um if planes_um is not None else _positions(cfg), np.float32)
        half = cfg.thickness_um / 2
        self.depths = np.arange(-half, half + 1e-6, cfg.layer_step_um, dtype=np.float32)
        self.pad = self._pad(self.planes_um)  # blur margin of a window, for these planes
        # The specimen is drawn over a margin for all of cfg's planes, whichever are imaged, so
        # one plane simulated alone shows the same cells as in the whole stack.
        canvas_pad = max(self.pad, self._pad(np.array(_positions(cfg), np.float32)))
        self._cells = _draw_cells(cfg, self.depths, canvas_pad)
        self._otfs: dict[tuple[int, int, float, int], np.ndarray] = {}

    # ------------------------------------------------------------------ public

    def render(self, win: Window) -> np.ndarray:
        """uint8 (planes, h, w, 3) of the window, camera noise included."""
        clean = self.transmission(win)
        return np.stack([self._camera(plane, win, float(z)) for z, plane in zip(self.planes_um, clean)])

    def transmission(self, win: Window) -> np.ndarray:
        """Noise-free intensity (planes, h, w, 3) float32 in [0, 1] of the window."""
        cfg, pad = self.cfg, self.pad
        h, w = win.shape
        hp = sfft.next_fast_len(h + 2 * pad, real=True)
        wp = sfft.next_fast_len(w + 2 * pad, real=True)
        canvas = Window(win.y0 - pad, win.x0 - pad, win.y0 - pad + hp, win.x0 - pad + wp)
        acc = np.zeros((len(self.planes_um), 3, hp, wp // 2 + 1), np.complex64)
        near = self._cells_near(canvas)
        if len(near):
            tex_c = _texture(cfg.seed, 0, _TEXTURES["cytoplasm"], canvas)
            tex_n = _texture(cfg.seed, 1, _TEXTURES["chromatin"], canvas)
            layer_of = self._cells["layer"][near]
            for layers, rep in self._units():  # one unit's fields at a time: memory of two planes
                members = near[np.isin(layer_of, layers)]
                if not len(members):
                    continue
                e, hh = self._render(canvas, members, tex_c, tex_n)
                fe = sfft.rfft2(e, workers=1)
                fh = sfft.rfft2(hh, workers=1)
                del e, hh
                for c in range(3):
                    spectrum = EOSIN[c] * fe + HAEMATOXYLIN[c] * fh
                    for k, z in enumerate(self.planes_um):
                        acc[k, c] += spectrum * self._otf(hp, wp, abs(float(z - self.depths[rep])), c)
        out = np.empty((len(self.planes_um), h, w, 3), np.float32)
        for k in range(len(self.planes_um)):
            for c in range(3):
                blurred = sfft.irfft2(acc[k, c], s=(hp, wp), workers=1)[pad : pad + h, pad : pad + w]
                out[k, :, :, c] = cfg.background[c] * np.power(10.0, -np.clip(blurred, 0, None))
        return out

    # ------------------------------------------------------------------ internals

    def _pad(self, planes_um: np.ndarray) -> int:
        max_dz = float(np.max(np.abs(planes_um[:, None] - self.depths[None, :])))
        return int(np.ceil(defocus_radius_px(max_dz, self.cfg))) + 16

    def _units(self) -> list[tuple[list[int], int]]:
        """Groups of layers blurred alike: for one plane, layers the same distance from it share
        one FFT (their optical densities add first); for several planes, each layer alone."""
        n = len(self.depths)
        if len(self.planes_um) != 1:
            return [([i], i) for i in range(n)]
        z = float(self.planes_um[0])
        groups: dict[float, list[int]] = {}
        for i, d in enumerate(self.depths):
            groups.setdefault(round(abs(z - float(d)), 4), []).append(i)
        return [(layers, layers[0]) for _, layers in sorted(groups.items())]

    def _otf(self, hp: int, wp: int, dz: float, c: int) -> np.ndarray:
        key = (hp, wp, round(dz, 4), c)
        if key not in self._otfs:
            self._otfs[key] = defocus_otf(dz, _freq_radius(hp, wp), self.cfg, WAVELENGTHS_UM[c])
        return self._otfs[key]

    def _cells_near(self, canvas: Window) -> np.ndarray:
        """Indices of the cells that reach into the canvas."""
        cells = self._cells
        reach = cells["reach"]
        return np.nonzero(
            (cells["cy"] + reach > canvas.y0)
            & (cells["cy"] - reach < canvas.y1)
            & (cells["cx"] + reach > canvas.x0)
            & (cells["cx"] - reach < canvas.x1)
        )[0]

    def _render(
        self, canvas: Window, members: np.ndarray, tex_c: np.ndarray, tex_n: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Eosin and haematoxylin optical density of cells `members` over the canvas."""
        cells = self._cells
        h, w = canvas.shape
        e_field = np.zeros((h, w), np.float32)
        h_field = np.zeros((h, w), np.float32)
        for j in members:
            cy, cx = cells["cy"][j] - canvas.y0, cells["cx"][j] - canvas.x0
            r = cells["r"][j]
            cell = _ellipse(h, w, cy, cx, r, r * cells["elong"][j], cells["angle"][j])
            if cell is not None:
                sl, t = cell
                e = cells["eosin"][j] * t * (1 + 0.25 * tex_c[sl])
                e_field[sl] += np.clip(e, 0, None)
            rn = r * cells["nf"][j]
            nuc = _ellipse(
                h, w, cy + cells["ny"][j], cx + cells["nx"][j], rn, rn * cells["nelong"][j], cells["nangle"][j]
            )
            if nuc is not None:
                sl, t = nuc
                hval = cells["haem"][j] * t**0.5 * (1 + 0.35 * tex_n[sl])
                h_field[sl] += np.clip(hval, 0, None)
        return e_field, h_field

    def _camera(self, plane: np.ndarray, win: Window, z_um: float) -> np.ndarray:
        """Shot and read noise, 8-bit quantisation of one plane (h, w, 3) float32 at focus z_um.

        The noise is seeded by the plane's position, so a simulation of one plane draws the
        same noise as that plane of a simulation of many."""
        cfg = self.cfg
        key = int(round(z_um * 1000)) + _OFFSET
        z = _blocks(
            win,
            lambda by, bx: np.random.default_rng([cfg.seed, 2, key, by + _OFFSET, bx + _OFFSET]).standard_normal(
                (BLOCK, BLOCK, 3), np.float32
            ),
        )
        sd = np.sqrt(np.clip(plane, 0, None) / cfg.full_well + cfg.read_noise**2)
        return np.clip(np.rint((plane + sd * z) * 255.0), 0, 255).astype(np.uint8)


def _positions(cfg: SimConfig) -> list[float]:
    c = (cfg.planes - 1) / 2
    return [round((i - c) * cfg.z_step_um, 4) for i in range(cfg.planes)]


def _draw_cells(cfg: SimConfig, depths: np.ndarray, pad: int) -> dict[str, np.ndarray]:
    """The specimen over the canvas (the slide plus `pad` on every side): one row per cell."""
    rng = np.random.default_rng([cfg.seed, 0])
    y0, x0 = -pad, -pad
    hc, wc = cfg.height + 2 * pad, cfg.width + 2 * pad
    area = hc * wc / 1e6
    n = int(rng.poisson(cfg.cells_per_mpx * area))
    n_clusters = max(1, int(rng.poisson(cfg.clusters_per_mpx * area)))
    centres = rng.uniform([y0, x0], [y0 + hc, x0 + wc], size=(n_clusters, 2))
    spread = rng.uniform(20, 60, size=n_clusters) / cfg.pixel_size_um * 0.243
    scattered = rng.random(n) < cfg.scattered_fraction
    uniform = rng.uniform([y0, x0], [y0 + hc, x0 + wc], size=(n, 2))
    k = rng.integers(n_clusters, size=n)
    clustered = centres[k] + rng.normal(0, 1, size=(n, 2)) * spread[k, None]
    pos = np.where(scattered[:, None], uniform, clustered)
    r = rng.uniform(*cfg.cell_radius_um, size=n) / cfg.pixel_size_um
    nf = rng.uniform(*cfg.nucleus_fraction, size=n)
    off = rng.normal(0, 1, size=(n, 2)) * (0.15 * r)[:, None]
    cells = {
        "cy": pos[:, 0],
        "cx": pos[:, 1],
        "layer": rng.integers(len(depths), size=n),
        "r": r,
        "elong": rng.uniform(0.7, 1.0, size=n),
        "angle": rng.uniform(0, np.pi, size=n),
        "eosin": rng.uniform(*cfg.eosin_od, size=n),
        "nf": nf,
        "ny": off[:, 0],
        "nx": off[:, 1],
        "nelong": rng.uniform(0.75, 1.0, size=n),
        "nangle": rng.uniform(0, np.pi, size=n),
        "haem": rng.uniform(*cfg.haematoxylin_od, size=n),
    }
    cells["reach"] = np.maximum(r, np.hypot(off[:, 0], off[:, 1]) + r * nf) + 2
    return cells


def _blocks(win: Window, make: callable) -> np.ndarray:  # type: ignore[valid-type]
    """The window cut from a field drawn per BLOCK x BLOCK block by `make(by, bx)`."""
    by0, by1 = win.y0 // BLOCK, -(-win.y1 // BLOCK)
    bx0, bx1 = win.x0 // BLOCK, -(-win.x1 // BLOCK)
    rows = []
    for by in range(by0, by1):
        rows.append(np.concatenate([make(by, bx) for bx in range(bx0, bx1)], axis=1))
    full = np.concatenate(rows, axis=0)
    oy, ox = win.y0 - by0 * BLOCK, win.x0 - bx0 * BLOCK
    return full[oy : oy + win.shape[0], ox : ox + win.shape[1]]


def _texture(seed: int, kind: int, sigma: float, win: Window) -> np.ndarray:
    """Unit-variance Gaussian random field (correlation length `sigma` px) over the window."""
    radius = int(math.ceil(4 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-x * x / (2 * sigma * sigma))
    k /= k.sum()
    big = Window(win.y0 - radius, win.x0 - radius, win.y1 + radius, win.x1 + radius)
    white = _blocks(
        big,
        lambda by, bx: np.random.default_rng([seed, 1, kind, by + _OFFSET, bx + _OFFSET]).standard_normal(
            (BLOCK, BLOCK), np.float32
        ),
    )
    k32 = k.astype(np.float32)
    smooth = correlate1d(correlate1d(white, k32, axis=0, mode="constant"), k32, axis=1, mode="constant")
    norm = float(np.sum(k * k))  # std of the separable filter applied to unit white noise
    return smooth[radius:-radius, radius:-radius] / norm


def windows(height: int, width: int, side: int) -> Iterator[Window]:
    """Row-major windows of `side` covering height x width (the last row/column clipped)."""
    for y in range(0, height, side):
        for x in range(0, width, side):
            yield Window(y, x, min(y + side, height), min(x + side, width))
