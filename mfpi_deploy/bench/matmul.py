"""The hardware reference: the measured dense float32 matrix-product rate of a device.

Convolutions run as matrix products (im2col / implicit GEMM), so the share of this rate a
network reaches says how well a backend uses the machine, independent of clock and cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from mfpi_deploy.bench.stats import Summary, summarize
from mfpi_deploy.bench.timing import repeat_timed


@dataclass(frozen=True)
class MatmulReference:
    """float32 (n x n) @ (n x n) on `device`: 2 n^3 FLOPs per product."""

    device: str
    size: int
    threads: int | None
    seconds: Summary
    backend: str = ""  # the backend whose rounds it was interleaved with ("" = measured alone)

    @property
    def flops(self) -> int:
        return 2 * self.size ** 3

    @property
    def gflops_per_s(self) -> float:
        """Rate at the median time."""
        return self.flops / self.seconds.median / 1e9

    def to_dict(self) -> dict[str, object]:
        return {"backend": self.backend, "device": self.device, "size": self.size, "dtype": "float32", "threads": self.threads,
                "seconds": self.seconds.to_dict(), "gflops_per_s": self.gflops_per_s}


def matmul_runner(size: int, device: str = "cpu", threads: int | None = None) -> Callable[[], None]:
    """A call doing one float32 product of side `size` on `device`, complete when it returns."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=gen).to(dev)
    b = torch.rand(size, size, generator=gen).to(dev)
    out = torch.empty(size, size, device=dev)

    def run() -> None:
        with torch.inference_mode():
            torch.matmul(a, b, out=out)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return run


def matmul_threads(device: str, threads: int | None) -> int | None:
    """Threads the CPU product runs on (None on a GPU)."""
    return (threads or torch.get_num_threads()) if device == "cpu" else None


def measure_matmul(size: int = 2048, *, device: str = "cpu", runs: int = 5, warmup: int = 1,
                   threads: int | None = None) -> MatmulReference:
    """Time `runs` float32 matrix products of side `size` with torch on `device`, on their own."""
    run = matmul_runner(size, device, threads)
    times = repeat_timed(run, runs, warmup)
    return MatmulReference(device=device, size=size, threads=matmul_threads(device, threads),
                           seconds=summarize(times))
