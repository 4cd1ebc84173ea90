"""Shapes, value range, config and stride errors of the networks (tiny widths: real compute)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfpi_deploy.errors import InputShapeError, MfpiError
from mfpi_deploy.models import DeepZStack, create_model, dpm_channel, dpm_value, stack_dpm_values
from mfpi_deploy.models.uint8_io import Uint8DeepZ, Uint8MFPINet


@pytest.mark.parametrize(("channels", "planes"), [(3, 11), (1, 11), (3, 5)])
def test_mfpinet_output_shape_and_range(channels, planes):
    net = create_model("mfpinet", in_channels=channels, planes=planes, width=8).eval()
    x = torch.rand(2, channels, 24, 40)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, planes * channels, 48, 80)
    assert float(y.min()) > 0.0 and float(y.max()) < 1.0


def test_mfpinet_planes_are_plane_major():
    """Channels C*i..C*i+C-1 are plane i: zeroing the last conv's plane-2 rows changes only those."""
    net = create_model("mfpinet", in_channels=3, planes=4, width=8).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        net.conv_block[2].weight[6:9] = 0
        net.conv_block[2].bias[6:9] = 0
        y = net(x)
    assert torch.allclose(y[:, 6:9], torch.full_like(y[:, 6:9], 0.5))
    assert not torch.allclose(y[:, 3:6], torch.full_like(y[:, 3:6], 0.5))


@pytest.mark.parametrize(("h", "w"), [(20, 24), (24, 12), (0, 8)])
def test_mfpinet_stride_error(h, w):
    net = create_model("mfpinet", width=8)
    with pytest.raises(InputShapeError, match="multiples of 8"):
        net(torch.rand(1, 3, h, w))


def test_wrong_channel_count_is_refused():
    net = create_model("mfpinet", in_channels=1, width=8)
    with pytest.raises(InputShapeError, match="1 input channel"):
        net(torch.rand(1, 3, 16, 16))
    deepz = create_model("deepz", width=8)
    with pytest.raises(InputShapeError, match="4 input channel"):
        deepz(torch.rand(1, 3, 16, 16))


def test_deepz_shape_stride_and_dpm():
    net = create_model("deepz", width=8).eval()
    img = torch.rand(1, 3, 32, 48)
    x = dpm_channel(img, -5)
    assert x.shape == (1, 4, 32, 48)
    assert torch.allclose(x[:, 3], torch.full((1, 32, 48), dpm_value(-5)))
    assert dpm_value(-5) == pytest.approx(-2.49995)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 3, 32, 48) and float(y.min()) >= 0.0
    with pytest.raises(InputShapeError, match="multiples of 16"):
        net(dpm_channel(torch.rand(1, 3, 24, 32), 0))


def test_discriminator_gives_probability():
    d = create_model("mfpinet_discriminator", in_channels=6, width=8).eval()
    p = d(torch.rand(3, 6, 32, 32))
    assert p.shape == (3, 1)
    assert torch.all((p > 0) & (p < 1))
    assert torch.allclose(torch.sigmoid(d.logits(torch.ones(1, 6, 32, 32))), d(torch.ones(1, 6, 32, 32)))


def test_factory_errors_are_clear():
    with pytest.raises(MfpiError, match="unknown architecture 'unet'.*mfpinet"):
        create_model("unet")
    with pytest.raises(MfpiError, match="unknown option.*depth"):
        create_model("mfpinet", depth=3)
    with pytest.raises(MfpiError, match="in_channels must be 1"):
        create_model("mfpinet", in_channels=2)
    with pytest.raises(MfpiError, match="multiple of in_channels"):
        create_model("deepz", width=10)


def test_uint8_wrappers_match_float_network():
    net = create_model("mfpinet", in_channels=3, planes=3, width=8).eval()
    tiles = torch.randint(0, 256, (2, 16, 24, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = Uint8MFPINet(net)(tiles)
        ref = net(tiles.permute(0, 3, 1, 2).float() / 255)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 32, 48, 3)
    expected = (ref.reshape(2, 3, 3, 32, 48).permute(0, 1, 3, 4, 2) * 255).round().to(torch.uint8)
    assert torch.equal(out, expected)

    dz = create_model("deepz", width=8).eval()
    tiles = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
    dpm = torch.tensor([dpm_value(-2), dpm_value(3)])
    with torch.no_grad():
        out = Uint8DeepZ(dz)(tiles, dpm)
        ref = dz(dpm_channel(tiles[1:].permute(0, 3, 1, 2).float() / 255, 3))
    assert out.shape == (2, 16, 16, 3)
    assert torch.equal(out[1], (ref[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8))


def test_residual_mfpinet_starts_at_bicubic_with_the_papers_parameters():
    from mfpi_deploy.degrade import upsample_bicubic
    from mfpi_deploy.models import profile_model

    net = create_model("mfpinet", in_channels=3, planes=5, width=8, residual=True).eval()
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    with torch.no_grad():
        out = Uint8MFPINet(net)(torch.from_numpy(image)[None])[0].numpy()  # (Z, 2H, 2W, C)
    bicubic = upsample_bicubic(image)
    assert out.shape == (5, 64, 80, 3)
    for plane in out:
        assert np.abs(plane.astype(int) - bicubic.astype(int)).max() <= 1  # equal within rounding
    paper = profile_model("mfpinet", (1, 3, 384, 384))
    residual = profile_model("mfpinet", (1, 3, 384, 384), residual=True)
    assert residual.parameters == paper.parameters == 2_504_737
    net.train()  # training sees the correction unclamped; use is clamped to [0, 1]
    x = torch.ones(1, 3, 16, 16)
    with torch.no_grad():
        net.conv_block[2].bias.fill_(0.5)
        assert net(x).max() > 1.4
        assert net.eval()(x).max() == 1.0


def test_deepz_at_scale_2_takes_the_low_resolution_input():
    """scale 2: bicubic upsampling inside, so the input grid is 8 and the output is twice the input."""
    net = create_model("deepz", in_channels=2, width=8, scale=2).eval()
    x = dpm_channel(torch.rand(2, 1, 24, 40), 3)
    with torch.no_grad():
        y = net(x)
        ref = create_model("deepz", in_channels=2, width=8).eval()
        ref.load_state_dict(net.state_dict())  # same weights: the same network after the upsampling
        up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        assert torch.allclose(up[:, 1], torch.full_like(up[:, 1], dpm_value(3)))  # the DPM stays constant
        assert torch.equal(y, ref(up))
    assert y.shape == (2, 1, 48, 80)
    with pytest.raises(InputShapeError, match="multiples of 8"):
        net(dpm_channel(torch.rand(1, 1, 20, 24), 0))
    with pytest.raises(MfpiError, match="scale must divide 16"):
        create_model("deepz", width=8, scale=3)


def test_deepz_stack_is_one_pass_per_plane_in_plane_major_order():
    net = create_model("deepz", width=8, scale=2).eval()
    stack = DeepZStack(net, planes=5)
    assert stack_dpm_values(5) == [dpm_value(i) for i in (-2, -1, 0, 1, 2)]
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        y = stack(x)
        assert y.shape == (2, 15, 32, 32)
        for i, z in enumerate((-2, -1, 0, 1, 2)):
            assert torch.equal(y[:, 3 * i : 3 * i + 3], net(dpm_channel(x, z)))
