"""The FLOP and parameter columns against the architecture facts (shared/reference/ARCHITECTURE.md)."""

from __future__ import annotations

import pytest

from mfpi_deploy.bench.workload import BenchModel, check_tile, make_workloads
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import dpm_value


def test_paper_size_workloads_match_the_architecture_facts():
    w = make_workloads(384, 1)
    m, r, d = w[BenchModel.MFPINET], w[BenchModel.MFPINET_RESIDUAL], w[BenchModel.DEEPZ]
    assert m.parameters == 2_504_737
    assert m.flops / 1e9 == pytest.approx(263.35, rel=0.005)
    assert (m.passes, m.input_shape, m.output_shape) == (1, (1, 384, 384, 3), (1, 11, 768, 768, 3))
    assert d.parameters == 19_406_272
    assert d.flops_per_pass / 1e9 == pytest.approx(761.40, rel=0.005)
    assert d.passes == 11 and d.flops == 11 * d.flops_per_pass
    assert d.input_shape == (1, 768, 768, 3) and d.output_shape == m.output_shape
    # Same output volume: 11 planes of 768 x 768.
    assert m.output_voxels == d.output_voxels == 11 * 768 * 768
    # Work ratio behind the paper's speed-up: about 32x fewer FLOPs for MFPINet.
    assert d.flops / m.flops == pytest.approx(8375.4 / 263.35, rel=0.01)
    # The residual form: the same network (parameters, shapes) plus a fixed bicubic upsampling, a depthwise
    # 5x5 conv with 4 phases per channel on the input: 2 x 3 x 4 x 25 FLOPs per input pixel.
    assert (r.parameters, r.passes, r.input_shape, r.output_shape) == (m.parameters, 1, m.input_shape, m.output_shape)
    assert r.flops - m.flops == 2 * 3 * 4 * 25 * 384 * 384
    assert r.config == {**m.config, "residual": True} and m.config == {"in_channels": 3, "planes": 11}
    assert d.config == {"in_channels": 4}


def test_batch_and_tile_scale_cost_and_volume():
    a = make_workloads(64, 1, width=8)
    b = make_workloads(64, 3, width=8)
    assert list(a) == [BenchModel.MFPINET, BenchModel.MFPINET_RESIDUAL, BenchModel.DEEPZ]
    assert all(w.config["width"] == 8 for w in a.values())
    for model in BenchModel:
        assert b[model].flops == pytest.approx(3 * a[model].flops, rel=1e-6)
        assert b[model].output_voxels == 3 * a[model].output_voxels
        assert b[model].parameters == a[model].parameters


def test_deepz_dpm_values_cover_the_planes_in_order():
    d = make_workloads(32, 1, width=8)[BenchModel.DEEPZ]
    assert d.dpm_values() == [dpm_value(i) for i in range(-5, 6)]
    x = d.sample_input()
    assert x.shape == (1, 64, 64, 3) and x.dtype.name == "uint8"


@pytest.mark.parametrize("tile", [0, -8, 12, 100])
def test_bad_tiles_are_user_errors(tile):
    with pytest.raises(MfpiError, match="multiple of 8"):
        check_tile(tile)


def test_bad_batch():
    with pytest.raises(MfpiError, match="--batch"):
        make_workloads(32, 0)
