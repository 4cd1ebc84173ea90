"""Validation during training: the model and the two baselines, per plane, on the same patches.

The baselines are those of `mfpi-eval` (bicubic upsampling of the input copied to every plane;
the true in-focus plane copied to every plane), so the log says during training what the
evaluation will say after it: whether the model beats bicubic on every plane. `best/` is chosen
on the margin over bicubic summed over planes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from training.metrics import psnr_from_mse


@dataclass(frozen=True)
class Validation:
    """PSNR (dB, 8-bit) per plane of the model and the baselines."""

    model: list[float]
    bicubic: list[float]
    focus_copy: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.model))

    @property
    def margin(self) -> float:
        """Sum over planes of the model's PSNR minus bicubic's (what best/ is chosen on)."""
        return float(sum(m - b for m, b in zip(self.model, self.bicubic)))

    def below_bicubic(self) -> list[int]:
        """Planes (indices) where the model is worse than bicubic."""
        return [i for i, (m, b) in enumerate(zip(self.model, self.bicubic)) if m < b]

    def to_dict(self) -> dict[str, object]:
        return {
            "val_psnr": round(self.mean, 4),
            "val_margin_db": round(self.margin, 4),
            "val_psnr_planes": [round(v, 3) for v in self.model],
            "val_bicubic_planes": [round(v, 3) for v in self.bicubic],
            "val_focus_copy_planes": [round(v, 3) if np.isfinite(v) else None for v in self.focus_copy],
            "val_below_bicubic": self.below_bicubic(),
        }


def _levels(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0.0, 1.0) * 255)


@torch.no_grad()
def validate(
    gen: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    planes: int,
    channels: int,
    centre: int,
    scale: int = 2,
) -> Validation:
    """Per-plane PSNR of `gen` and the baselines over (input, target) batches (N, C, h, w), (N, Z*C, H, W)."""
    was_training = gen.training
    gen.eval()
    sq = {k: np.zeros(planes) for k in ("model", "bicubic", "copy")}
    count = 0
    try:
        for x, y in batches:
            truth = _levels(y)
            bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
            focus = y[:, centre * channels : (centre + 1) * channels]
            guesses = {
                "model": gen(x),
                "bicubic": bicubic.repeat(1, planes, 1, 1),
                "copy": focus.repeat(1, planes, 1, 1),
            }
            for key, guess in guesses.items():
                err = (_levels(guess) - truth) ** 2
                err = err.reshape(len(x), planes, channels, *y.shape[2:])
                sq[key] += err.sum(dim=(0, 2, 3, 4)).double().cpu().numpy()
            count += len(x) * channels * y.shape[2] * y.shape[3]
    finally:
        gen.train(was_training)
    per = {k: [psnr_from_mse(s / max(count, 1)) for s in v] for k, v in sq.items()}
    return Validation(per["model"], per["bicubic"], per["copy"])
