"""Accuracy figures between two uint8 outputs: parity (exact up to rounding) and per-plane PSNR."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.codecs import psnr_db

PSNR_IDENTICAL = 100.0  # reported instead of infinity when two planes are identical


class GateError(MfpiError):
    """A precision variant below its accuracy gate; carries the figure (lowest per-plane PSNR vs fp32, dB)."""

    precision = ""  # set by each variant's subclass

    def __init__(self, message: str, *, min_psnr_db: float, threshold_db: float) -> None:
        super().__init__(message)
        self.min_psnr_db, self.threshold_db = float(min_psnr_db), float(threshold_db)


@dataclass(frozen=True)
class Parity:
    """How far an engine's uint8 output is from the reference's: largest difference and share differing."""

    max_abs_diff: int
    share_differing: float
    values: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def merge(self, other: Parity) -> Parity:
        n = self.values + other.values
        share = (self.share_differing * self.values + other.share_differing * other.values) / max(n, 1)
        return Parity(max(self.max_abs_diff, other.max_abs_diff), share, n)


def parity(a: np.ndarray, b: np.ndarray) -> Parity:
    """Largest absolute difference and share of values that differ between two uint8 arrays."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return Parity(int(d.max()) if d.size else 0, float(np.count_nonzero(d)) / max(d.size, 1), int(d.size))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (`output.codecs.psnr_db`), PSNR_IDENTICAL at most (when equal)."""
    return min(PSNR_IDENTICAL, psnr_db(a, b))


def psnr_per_plane(test: np.ndarray, reference: np.ndarray) -> list[float]:
    """PSNR of each focal plane over the whole batch, outputs shaped (N, Z, H, W, C)."""
    if test.shape != reference.shape or test.ndim != 5:
        raise ValueError(f"expected two (N, Z, H, W, C) arrays of one shape, got {test.shape} and {reference.shape}")
    return [round(psnr(test[:, z], reference[:, z]), 3) for z in range(test.shape[1])]
