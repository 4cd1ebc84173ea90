"""Parameters and FLOPs of a network, counted on the meta device (no real compute)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mfpi_deploy.models.factory import Architecture, create_model


@dataclass(frozen=True)
class ModelProfile:
    """Size and cost of one forward pass (FLOPs count a multiply-add as 2)."""

    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    flops: int

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def profile_model(name: str | Architecture, input_shape: tuple[int, ...], **config: Any) -> ModelProfile:
    """Count parameters and forward FLOPs of `name` for an input of `input_shape` (N, C, H, W)."""
    with torch.device("meta"):
        model = create_model(name, **config)
        x = torch.empty(input_shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(x)
    params = sum(p.numel() for p in model.parameters())
    return ModelProfile(
        name=Architecture.parse(name).value,
        input_shape=tuple(input_shape),
        output_shape=tuple(y.shape),
        parameters=params,
        flops=int(counter.get_total_flops()),
    )
