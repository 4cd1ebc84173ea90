"""Acceptance numbers from shared/reference/ARCHITECTURE.md: exact parameters, FLOPs within 0.5%."""

from __future__ import annotations

import pytest

from mfpi_deploy.models import profile_model


@pytest.mark.parametrize(
    ("name", "shape", "params", "gflops", "out_shape"),
    [
        ("mfpinet", (1, 3, 384, 384), 2_504_737, 263.35, (1, 33, 768, 768)),
        ("mfpinet_discriminator", (1, 33, 768, 768), 5_181_377, 370.9, (1, 1)),
        ("deepz", (1, 4, 768, 768), 19_406_272, 761.40, (1, 3, 768, 768)),
    ],
)
def test_reference_parameters_and_flops(name, shape, params, gflops, out_shape):
    p = profile_model(name, shape)
    assert p.parameters == params
    assert p.gflops == pytest.approx(gflops, rel=0.005)
    assert p.output_shape == out_shape


def test_flops_scale_with_pixels_and_width():
    small = profile_model("mfpinet", (1, 3, 192, 192))
    big = profile_model("mfpinet", (1, 3, 384, 384))
    assert big.flops == pytest.approx(4 * small.flops, rel=1e-6)
    narrow = profile_model("mfpinet", (1, 3, 384, 384), width=32)
    assert narrow.flops < big.flops / 3
