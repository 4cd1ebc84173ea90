from __future__ import annotations

import numpy as np

from mfpi_deploy.synth import SimConfig, plane_positions_um, simulate_stack, write_stack
from mfpi_deploy.synth.simulate import defocus_psf
from mfpi_deploy.tiling import Box
from training.planes import sharpness
from training.stack import open_stack


def test_deterministic_by_seed():
    cfg = SimConfig(height=96, width=80, seed=5, planes=3)
    a, b = simulate_stack(cfg), simulate_stack(cfg)
    assert a.shape == (3, 96, 80, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, simulate_stack(SimConfig(height=96, width=80, seed=6, planes=3)))


def _psf_width(psf: np.ndarray) -> float:
    yy, xx = np.mgrid[: psf.shape[0], : psf.shape[1]]
    c = (psf.shape[0] // 2, psf.shape[1] // 2)
    return float(np.sqrt((psf * ((yy - c[0]) ** 2 + (xx - c[1]) ** 2)).sum() / psf.sum()))


def test_psf_widens_with_defocus():
    cfg = SimConfig()
    widths = [_psf_width(defocus_psf(dz, 128, cfg)) for dz in (0.0, 2.7, 5.4, 10.8)]
    assert all(b > a for a, b in zip(widths, widths[1:]))
    assert abs(_psf_width(defocus_psf(-5.4, 128, cfg)) - widths[2]) < 1e-3  # symmetric in z


def test_stack_blur_grows_with_distance_from_focus():
    # All cells in one layer at depth 0: the image must get blurrier plane by plane away from it.
    cfg = SimConfig(
        height=160, width=160, seed=2, planes=7, thickness_um=0.0, cells_per_mpx=500.0, read_noise=0.0, full_well=1e9
    )
    stack = simulate_stack(cfg)
    s = [sharpness(p) for p in stack]
    c = 3
    assert s[c] == max(s)
    assert all(s[c - i] > s[c - i - 1] for i in range(c))
    assert all(s[c + i] > s[c + i + 1] for i in range(c))
    # stained cells absorb: the in-focus plane is darker than white where cells are
    assert stack[c].min() < 150 and np.median(stack[c]) > 200


def test_written_stack_reads_back(tmp_path):
    cfg = SimConfig(height=64, width=64, seed=1, planes=3)
    stack = simulate_stack(cfg)
    path = write_stack(tmp_path / "s.ome.tif", stack, plane_positions_um(3), cfg.pixel_size_um)
    st = open_stack(path)
    assert st.planes_um == [-2.7, 0.0, 2.7] and st.pixel_size_um == cfg.pixel_size_um
    np.testing.assert_array_equal(st.read(range(3), Box(0, 0, 64, 64)), stack)
    assert not list(tmp_path.glob(".*tmp"))
