"""MFPINet generator: one low-resolution image in, a stack of focal planes at 2x out.

Built from shared/reference/ARCHITECTURE.md; module names follow the authors' released
checkpoint so their state dict loads strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mfpi_deploy.models.configs import MFPINetConfig
from mfpi_deploy.models.shapes import check_input


def _cubic(t: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with PyTorch's (and OpenCV's) a = -0.75."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


class BicubicUp2(nn.Module):
    """Bicubic 2x upsampling (half-pixel centres, edge pixels repeated), as F.interpolate's bicubic.

    Written as edge padding, one fixed 5x5 depthwise convolution per output phase and a pixel
    shuffle: the same values, but ops every runtime runs fast (Resize cubic is slow on some CPU
    runtimes) and a plain convolution for quantisers. The weights are a non-persistent buffer,
    so checkpoints and parameter counts do not change.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        even = [_cubic(1.75), _cubic(0.75), _cubic(0.25), _cubic(1.25), 0.0]  # output 2i: source i - 0.25
        odd = [0.0, _cubic(1.25), _cubic(0.25), _cubic(0.75), _cubic(1.75)]  # output 2i + 1: source i + 0.25
        taps = torch.tensor([even, odd])
        phases = torch.stack([torch.outer(taps[py], taps[px]) for py in (0, 1) for px in (0, 1)])  # (4, 5, 5)
        self.register_buffer("weight", phases[:, None].repeat(channels, 1, 1, 1), persistent=False)
        self.channels = channels
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return self.shuffle(F.conv2d(x, self.weight.to(x.dtype), groups=self.channels))


class BlockE(nn.Module):
    """Four 3x3 convs with three residual PReLU steps and a plain last conv (block "E")."""

    def __init__(self, width: int) -> None:
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(width, width, 3, padding=1))
        for i in range(1, 4):
            setattr(self, f"prelu{i}", nn.PReLU(width, init=0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.prelu1(self.conv1(x))
        x = x + self.prelu2(self.conv2(x))
        x = x + self.prelu3(self.conv3(x))
        return self.conv4(x)


class _UpScale(nn.Module):
    """Conv to 4x channels then PixelShuffle(2): the 2x super-resolution step."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def _decoder_stage(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), BlockE(width), BlockE(width))


class MFPINetGenerator(nn.Module):
    """MFPINet generator. Input (N, C, H, W) in [0, 1]; output (N, planes*C, 2H, 2W) in [0, 1].

    Output channels are plane-major: channels C*i .. C*i+C-1 are plane i, planes ordered
    from the most negative z offset to the most positive.
    """

    def __init__(self, config: MFPINetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MFPINetConfig()
        w = config.width
        self.in_conv = nn.Conv2d(config.in_channels, w, 7, padding=3)
        self.in_prelu = nn.PReLU(w, init=0.25)
        self.down1 = nn.Sequential(BlockE(w), BlockE(w))
        self.down2 = nn.Sequential(BlockE(w), BlockE(w))
        self.down3 = nn.Sequential(BlockE(w), BlockE(w))
        self.pool = nn.AvgPool2d(2)
        self.bottem_block = nn.Sequential(  # (sic) the released checkpoint's spelling
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.Conv2d(2 * w, w, 3, padding=1),
        )
        self.up1 = _decoder_stage(w)
        self.up2 = _decoder_stage(w)
        self.up3 = _decoder_stage(w)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_scale = _UpScale(w)
        self.conv_block = nn.Sequential(
            nn.Conv2d(w, w, 3, padding=1),
            nn.PReLU(w, init=0.25),
            nn.Conv2d(w, config.out_channels, 3, padding=1),
        )
        if config.residual:  # start from the bicubic baseline: no correction yet
            self.bicubic = BicubicUp2(config.in_channels)
            nn.init.zeros_(self.conv_block[2].weight)
            nn.init.zeros_(self.conv_block[2].bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_input(image, channels=self.config.in_channels, stride=MFPINetConfig.STRIDE, name="MFPINet")
        x = self.in_prelu(self.in_conv(image))
        p1 = self.pool(self.down1(x))
        p2 = self.pool(self.down2(p1))
        p3 = self.pool(self.down3(p2))
        d = self.bottem_block(p3)
        d = self.upsample(self.up1(torch.cat([p3, d], dim=1)))
        d = self.upsample(self.up2(torch.cat([p2, d], dim=1)))
        d = self.upsample(self.up3(torch.cat([p1, d], dim=1)))
        d = self.conv_block(self.up_scale(d))
        if not self.config.residual:
            return torch.tanh(d) / 2 + 0.5
        base = self.bicubic(image)  # (N, C, 2H, 2W), added to every plane without copying it
        y = (d.unflatten(1, (self.config.planes, self.config.in_channels)) + base.unsqueeze(1)).flatten(1, 2)
        # Unclamped while training (L1 keeps its gradient past the range), clamped to [0, 1] for use.
        return y if self.training else y.clamp(0.0, 1.0)
