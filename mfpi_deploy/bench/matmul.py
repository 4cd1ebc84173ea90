"""The hardware reference: the measured dense float32 matrix-product rate of a device.

Convolutions run as matrix products (im2col / implicit GEMM), so the share of this rate a
network reaches says how well a backend uses the machine, independent of clock and cores.
The same n x n x n product is computed by several libraries (torch.matmul, and on the CPU
oneDNN through a 1x1 convolution and numpy's BLAS when threads are not pinned); the fastest
here is the reference, since a BLAS can be slow on one vendor's CPUs (MKL on AMD).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from mfpi_deploy.bench.stats import Summary, summarize
from mfpi_deploy.bench.timing import repeat_timed


@dataclass(frozen=True)
class MatmulReference:
    """float32 (n x n) @ (n x n) on `device` by `method`: 2 n^3 FLOPs per product."""

    device: str
    size: int
    threads: int | None
    seconds: Summary
    backend: str = ""  # the backend whose rounds it was interleaved with ("" = measured alone)
    method: str = "torch.matmul"

    @property
    def flops(self) -> int:
        return 2 * self.size ** 3

    @property
    def gflops_per_s(self) -> float:
        """Rate at the median time."""
        return self.flops / self.seconds.median / 1e9

    def to_dict(self) -> dict[str, object]:
        return {"backend": self.backend, "device": self.device, "method": self.method, "size": self.size,
                "dtype": "float32", "threads": self.threads, "seconds": self.seconds.to_dict(),
                "gflops_per_s": self.gflops_per_s}


def matmul_runner(size: int, device: str = "cpu", threads: int | None = None) -> Callable[[], None]:
    """A call doing one float32 torch.matmul of side `size` on `device`, complete when it returns."""
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


def conv1x1_runner(size: int, threads: int | None = None) -> Callable[[], None]:
    """The same n x n x n product as a 1x1 convolution on the CPU (oneDNN, as the networks' convs)."""
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, size, 1, size, generator=gen)
    w = torch.rand(size, size, 1, 1, generator=gen)

    def run() -> None:
        with torch.inference_mode():
            torch.nn.functional.conv2d(x, w)

    return run


def numpy_runner(size: int) -> Callable[[], None]:
    """The product with numpy's BLAS (its own thread pool: used only when threads are not pinned)."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty((size, size), np.float32)
    return lambda: np.matmul(a, b, out=out)  # type: ignore[return-value]


def gemm_candidates(size: int, device: str, threads: int | None) -> dict[str, Callable[[], None]]:
    """Every way of computing the product this device offers, by name."""
    found = {"torch.matmul": matmul_runner(size, device, threads)}
    if device == "cpu":
        found["oneDNN conv1x1"] = conv1x1_runner(size, threads)
        if threads is None:
            found["numpy.matmul"] = numpy_runner(size)
    return found


def fastest_gemm(size: int, device: str = "cpu", threads: int | None = None,
                 trials: int = 2) -> tuple[str, Callable[[], None]]:
    """The fastest candidate (best of `trials` after one warm-up call each)."""
    best: tuple[float, str, Callable[[], None]] | None = None
    for name, run in gemm_candidates(size, device, threads).items():
        t = min(repeat_timed(run, trials, 1))
        if best is None or t < best[0]:
            best = (t, name, run)
    assert best is not None
    return best[1], best[2]


def matmul_threads(device: str, threads: int | None) -> int | None:
    """Threads the CPU product runs on (None on a GPU)."""
    return (threads or torch.get_num_threads()) if device == "cpu" else None


def measure_matmul(size: int = 2048, *, device: str = "cpu", runs: int = 5, warmup: int = 1,
                   threads: int | None = None) -> MatmulReference:
    """Time `runs` products of side `size` by the fastest method on `device`, on their own."""
    method, run = fastest_gemm(size, device, threads)
    times = repeat_timed(run, runs, warmup)
    return MatmulReference(device=device, size=size, threads=matmul_threads(device, threads),
                           seconds=summarize(times), method=method)
