from __future__ import annotations

import numpy as np
import pytest
import torch

from mfpi_deploy.degrade import Degradation, degrade_tensor, degrade_uint8, gaussian_kernel, upsample_bicubic
from mfpi_deploy.errors import MfpiError


def test_gaussian_kernel_matches_opencv_values():
    # cv2.getGaussianKernel(5, 3) = [0.1782, 0.2105, 0.2225, 0.2105, 0.1782]
    np.testing.assert_allclose(
        gaussian_kernel(5, 3.0), [0.17820326, 0.21052227, 0.22254894, 0.21052227, 0.17820326], atol=1e-6
    )


def test_constant_image_stays_constant_at_half_size():
    img = np.full((64, 48, 3), 137, np.uint8)
    out = degrade_uint8(img)
    assert out.shape == (32, 24, 3) and out.dtype == np.uint8
    assert np.all(out == 137)


def test_impulse_gives_the_5x5_gaussian_window():
    x = torch.zeros(1, 1, 33, 33)
    x[0, 0, 16, 16] = 1.0
    out = degrade_tensor(x, Degradation(scale=1))[0, 0].numpy()
    k = gaussian_kernel(5, 3.0)
    np.testing.assert_allclose(out[14:19, 14:19], np.outer(k, k), atol=1e-6)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    out[14:19, 14:19] = 0
    assert np.all(out == 0)


def test_downscale_keeps_mean_and_halves_size():
    rng = np.random.default_rng(1)
    img = (rng.random((1, 3, 64, 80)) * 0.5 + 0.25).astype(np.float32)  # away from 0/1: no clamping
    out = degrade_tensor(torch.from_numpy(img))
    assert out.shape == (1, 3, 32, 40)
    assert float(out.mean()) == pytest.approx(float(img.mean()), abs=2e-3)
    assert float(out.std()) < 0.2 * float(img.std())  # white noise is mostly removed by both filters


def test_blur_only_reduces_variance_of_noise():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 128, 1)).astype(np.uint8)
    out = degrade_uint8(img, Degradation(scale=1))
    # Independent noise through a separable kernel k: variance scales by (sum k^2)^2.
    k = gaussian_kernel(5, 3.0)
    expected = img.astype(float).var() * float((k**2).sum()) ** 2
    assert out.astype(float).var() == pytest.approx(expected, rel=0.1)
    assert out.astype(float).mean() == pytest.approx(img.astype(float).mean(), abs=1.0)


def test_bicubic_upsample_shape_and_constant():
    img = np.full((16, 8, 1), 50, np.uint8)
    up = upsample_bicubic(img)
    assert up.shape == (32, 16, 1) and np.all(up == 50)


def test_bad_size_and_kernel():
    with pytest.raises(ValueError):
        degrade_tensor(torch.zeros(1, 1, 15, 16))
    with pytest.raises(ValueError):
        Degradation(blur_size=4)
    for bad, says in (({"blur_size": 4}, "--blur-size must be odd"), ({"blur_sigma": -1.0}, "--blur-sigma")):
        with pytest.raises(MfpiError, match=says):  # one-line errors of the commands, not tracebacks
            Degradation(**bad)
