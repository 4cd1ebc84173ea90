from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from training.metrics import mean_psnr, plane_metrics, psnr_from_mse, stack_metrics


def test_metrics_match_scikit_image_and_definitions():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    p = np.clip(t.astype(int) + rng.integers(-9, 10, t.shape), 0, 255).astype(np.uint8)
    m = plane_metrics(p, t)
    diff = p.astype(float) - t.astype(float)
    assert m.mse == pytest.approx((diff**2).mean())
    assert m.mae == pytest.approx(np.abs(diff).mean())
    assert m.psnr == pytest.approx(peak_signal_noise_ratio(t, p, data_range=255))
    assert m.psnr == pytest.approx(10 * math.log10(255**2 / m.mse))
    assert m.ssim == pytest.approx(structural_similarity(t, p, data_range=255, channel_axis=-1))


def test_grey_identical_and_stack():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 256, (3, 32, 32, 1)).astype(np.uint8)
    same = stack_metrics(t, t)
    assert all(math.isinf(m.psnr) and m.ssim == pytest.approx(1.0) and m.mse == 0 for m in same)
    p = t.copy()
    p[1] = 255 - p[1]
    ms = stack_metrics(p, t)
    assert ms[1].ssim == pytest.approx(structural_similarity(t[1, ..., 0], p[1, ..., 0], data_range=255))
    assert math.isinf(mean_psnr(ms))
    assert psnr_from_mse(255.0**2) == pytest.approx(0.0) and psnr_from_mse(0) == math.inf


def test_refuses_float_and_mismatch():
    with pytest.raises(ValueError):
        plane_metrics(np.zeros((4, 4, 1)), np.zeros((4, 4, 1)))
    with pytest.raises(ValueError):
        stack_metrics(np.zeros((2, 4, 4, 1), np.uint8), np.zeros((3, 4, 4, 1), np.uint8))
