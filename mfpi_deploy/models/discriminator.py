"""MFPINet discriminator: an unconditional VGG-like critic of a whole focal stack."""

from __future__ import annotations

import torch
from torch import nn

from mfpi_deploy.models.configs import DiscriminatorConfig


class MFPINetDiscriminator(nn.Module):
    """Input (N, planes*C, H, W) in [0, 1]; output (N, 1): probability that the stack is real."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        w = config.width
        self.block1 = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 7, padding=3),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1),
            nn.MaxPool2d(2),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.block3 = nn.Sequential(
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(4 * w, 4 * w, 1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.block4 = nn.Sequential(
            nn.Conv2d(4 * w, 8 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(8 * w, 8 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(8 * w, 8 * w, 1),
        )
        self.fc = nn.Sequential(nn.Linear(8 * w, 2 * w), nn.ReLU(inplace=True), nn.Linear(2 * w, 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid score, for a numerically stable BCE-with-logits loss in training."""
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))
