"""Calibration tiles (real crops, simulated) and the accuracy figures."""

from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.accuracy import PSNR_IDENTICAL, parity, psnr, psnr_per_plane
from mfpi_deploy.export.calibration import bin2, real_tiles, simulated_tiles, to_uint8


def test_simulated_tiles_are_deterministic_and_varied():
    a, b = simulated_tiles(3, 64, 3, seed=1), simulated_tiles(3, 64, 3, seed=1)
    assert a.shape == (3, 64, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.std() > 10 and not np.array_equal(a[0], a[1])
    assert not np.array_equal(a, simulated_tiles(3, 64, 3, seed=2))
    grey = simulated_tiles(1, 64, 1, seed=1)
    assert grey.shape == (1, 64, 64, 1) and abs(float(grey.mean()) - float(a[0].mean())) < 1


def test_real_tiles_grey_and_rgb(real_stack_path):
    grey = real_tiles([real_stack_path], 1, 96, 4)
    rgb = real_tiles([real_stack_path], 3, 96, 2)
    assert grey.shape == (4, 96, 96, 1) and grey.dtype == np.uint8 and grey.std() > 5
    assert rgb.shape == (2, 96, 96, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert np.array_equal(rgb[0, ..., 0], grey[0, ..., 0])  # same crop, replicated


def test_uint16_scaling_and_binning():
    img = np.arange(16, dtype=np.uint16).reshape(4, 4) * 1000
    assert bin2(img).shape == (2, 2) and bin2(img)[0, 0] == pytest.approx((0 + 1 + 4 + 5) * 1000 / 4)
    u8 = to_uint8(img, 0, 100)
    assert u8.min() == 0 and u8.max() == 255 and u8.dtype == np.uint8


def test_unreadable_calibration_image(tmp_path):
    bad = tmp_path / "x.tif"
    bad.write_bytes(b"nope")
    with pytest.raises(MfpiError, match="not a readable TIFF"):
        real_tiles([bad], 1, 32, 1)


def test_parity_and_psnr():
    a = np.zeros((2, 3, 4, 4, 1), np.uint8)
    b = a.copy()
    b[0, 1, 0, 0, 0] = 2
    p = parity(b, a)
    assert (p.max_abs_diff, p.values) == (2, a.size) and p.share_differing == pytest.approx(1 / a.size)
    planes = psnr_per_plane(b, a)
    assert planes[0] == planes[2] == PSNR_IDENTICAL
    assert planes[1] == pytest.approx(10 * np.log10(255**2 / (4 / 32)), abs=1e-3)
    assert psnr(a, a) == PSNR_IDENTICAL
    merged = p.merge(parity(a, a))
    assert merged.values == 2 * a.size and merged.share_differing == pytest.approx(0.5 / a.size)
