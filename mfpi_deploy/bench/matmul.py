"""The hardware reference: the measured dense float32 matrix-product rate (torch.matmul) of a device.

Convolutions run as matrix products (im2col / implicit GEMM), so the share of this rate a
network reaches says how well a backend uses the machine, independent of clock and cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from mfpi_deploy.bench.stats import Summary


@dataclass(frozen=True)
class MatmulReference:
    """float32 (n x n) @ (n x n) by torch.matmul on `device`: 2 n^3 FLOPs per product."""

    device: str
    size: int
    threads: int | None  # CPU threads (None on a GPU)
    seconds: Summary
    backend: str = ""  # the backend whose rounds it was interleaved with

    @property
    def flops(self) -> int:
        return 2 * self.size ** 3

    @property
    def gflops_per_s(self) -> float:
        """Rate at the median time."""
        return self.flops / self.seconds.median / 1e9

    def to_dict(self) -> dict[str, object]:
        return {"backend": self.backend, "device": self.device, "method": "torch.matmul", "size": self.size,
                "dtype": "float32", "threads": self.threads, "seconds": self.seconds.to_dict(),
                "gflops_per_s": self.gflops_per_s}


def matmul_runner(size: int, device: str = "cpu", threads: int | None = None) -> Callable[[], torch.Tensor]:
    """A call doing one float32 torch.matmul of side `size` on `device` (inputs seeded 0), complete when it returns."""
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.rand(size, size, generator=gen).to(device) for _ in range(2))
    out = torch.empty(size, size, device=device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            torch.matmul(a, b, out=out)
        if out.is_cuda:
            torch.cuda.synchronize()
        return out

    return run
