"""Deep-Z generator (the authors' re-implementation of the Table III baseline).

One forward pass refocuses an image to one plane, chosen by a constant "digital
propagation matrix" (DPM) channel; a stack of P planes costs P passes (`DeepZStack`).
With `scale` 2 the network first upsamples its input (bicubic), so as a baseline it takes
the same low-resolution image as MFPINet and gives the same high-resolution stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mfpi_deploy.models.configs import DeepZConfig, dpm_value, stack_dpm_values
from mfpi_deploy.models.shapes import check_input


def dpm_channel(image: torch.Tensor, plane_index: int) -> torch.Tensor:
    """Append the DPM channel for `plane_index` to an (N, C, H, W) image: (N, C+1, H, W)."""
    return with_dpm(image, torch.full((len(image),), dpm_value(plane_index)))


def with_dpm(image: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Append a constant DPM channel per sample (`values`, shape (N,)) to an (N, C, H, W) image."""
    n, _, h, w = image.shape
    dpm = values.to(image.dtype).to(image.device).reshape(n, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([image, dpm], dim=1)


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class DeepZGenerator(nn.Module):
    """Input (N, C+1, H, W): image in [0, 1] plus DPM; output (N, C, H, W), the refocused plane."""

    def __init__(self, config: DeepZConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DeepZConfig()
        w = config.width
        widths = [w, 2 * w, 4 * w, 8 * w, 16 * w]
        self.conv11 = _conv_relu(config.in_channels, w // 2 + 1)
        self.conv12 = _conv_relu(w // 2 + 1, w)
        for level in range(2, 6):
            cin, cout = widths[level - 2], widths[level - 1]
            setattr(self, f"conv{level}1", _conv_relu(cin, cout * 3 // 4))
            setattr(self, f"conv{level}2", _conv_relu(cout * 3 // 4, cout))
        for step in range(1, 5):
            c = widths[4 - step]  # channels after halving: 8w, 4w, 2w, w
            setattr(
                self,
                f"up{step}",
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * c, c, 3, padding=1)),
            )
            setattr(self, f"conv{step + 5}1", _conv_relu(2 * c, c * 3 // 2))
            setattr(self, f"conv{step + 5}2", _conv_relu(c * 3 // 2, c))
        self.out = _conv_relu(w, config.image_channels)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, channels=self.config.in_channels, stride=self.config.input_stride, name="Deep-Z")
        if self.config.scale > 1:  # a constant DPM channel stays constant under bicubic upsampling
            x = F.interpolate(x, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        reps = self.config.width // self.config.in_channels
        skips = [self.conv12(self.conv11(x)) + x.repeat(1, reps, 1, 1)]
        for level in range(2, 6):
            inp = self.pool(skips[-1])
            y = getattr(self, f"conv{level}2")(getattr(self, f"conv{level}1")(inp))
            skips.append(y + inp.repeat(1, 2, 1, 1))
        d = skips.pop()
        for step in range(1, 5):
            up = getattr(self, f"up{step}")(d)
            y = torch.cat([skips.pop(), up], dim=1)
            d = getattr(self, f"conv{step + 5}2")(getattr(self, f"conv{step + 5}1")(y)) + up
        return self.out(d)


class DeepZStack(nn.Module):
    """A whole stack from Deep-Z: (N, C, H, W) -> (N, planes*C, sH, sW), plane-major like MFPINet,
    by one pass per plane with that plane's DPM value (for validation and evaluation in torch)."""

    def __init__(self, net: DeepZGenerator, planes: int) -> None:
        super().__init__()
        self.net = net
        self.values = stack_dpm_values(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(with_dpm(x, torch.full((len(x),), v))) for v in self.values], dim=1)
