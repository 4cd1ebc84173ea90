"""Timing on one backend: every model's stack and the matmul reference in interleaved rounds (order alternating, so
load from other processes hits all alike) with memory peaks; and pipeline mode, the MFPINet engine inside run_slide."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import psutil
import tifffile
import torch

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.bench.report import PipelineResult
from mfpi_deploy.bench.workload import Workload
from mfpi_deploy.run import RunOptions, run_slide
from mfpi_deploy.tiling import DEFAULT_HALO
from mfpi_deploy.timing import interleaved

TILES_PER_SIDE = 4  # pipeline mode's slide: 4 x 4 tile cores


def stack_runner(backend: Backend, workload: Workload, tiles: np.ndarray) -> Callable[[], object]:
    """A call that computes one whole output stack of `workload` on `backend`."""
    if workload.passes == 1:
        return lambda: backend.run(tiles)
    dpms = [np.full(workload.batch, v, dtype=np.float32) for v in workload.dpm_values()]
    # run_many: GPU backends keep several passes in flight, as a production stack would; deque(maxlen=0) drains it.
    return lambda: deque(backend.run_many([(tiles, dpm) for dpm in dpms]), maxlen=0)


def matmul_runner(size: int, device: str = "cpu", threads: int | None = None) -> Callable[[], torch.Tensor]:
    """One float32 torch.matmul of side `size` (inputs seeded 0) on `device`, synchronised: the hardware reference
    (convolutions run as matrix products, so a network's share of this rate says how well a backend uses the device)."""
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


def cuda_used_bytes() -> int:
    """Device memory in use by every process (total - free): sees onnxruntime's and TensorRT's as well as torch's."""
    free, total = torch.cuda.mem_get_info()
    return int(total - free)


class PeakSampler:
    """A context manager sampling host RSS (and device memory above its level at start) in a thread, keeping
    the maxima in bytes per label in `host_peak` / `device_peak`; `phase(label)` sets where samples go."""

    def __init__(self, interval_s: float = 0.002, device_probe: Callable[[], int] | None = None) -> None:
        self.host_peak: dict[Hashable, int] = {}
        self.device_peak: dict[Hashable, int] = {}
        self._interval_s, self._device_probe = interval_s, device_probe
        self._device_base = device_probe() if device_probe else 0
        self._label: Hashable | None = None
        self._proc, self._lock, self._stop = psutil.Process(), threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mfpi-bench-memory", daemon=True)

    def phase(self, label: Hashable | None) -> None:
        """Attribute samples from now on to `label` (None: stop attributing), sampling at least once."""
        with self._lock:
            self._label = label
        self._sample()

    def _sample(self) -> None:
        with self._lock:
            if (label := self._label) is None:
                return
            self.host_peak[label] = max(self.host_peak.get(label, 0), self._proc.memory_info().rss)
            if self._device_probe is not None:
                used = max(0, self._device_probe() - self._device_base)
                self.device_peak[label] = max(self.device_peak.get(label, 0), used)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes (backends return host arrays, so device work is done by then)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_interleaved(
    runners: dict[Hashable, Callable[[], object]],
    runs: int,
    warmup: int,
    sampler: PeakSampler,
    progress: Callable[[str], None] | None = None,
) -> dict[Hashable, list[float]]:
    """Seconds per call of each runner in `runs` timed rounds after `warmup` untimed ones (`timing.interleaved`:
    the order reversed every other round); `sampler` attributes memory peaks to each runner's key."""

    def report(r: int, seconds: dict[Hashable, list[float]]) -> None:
        if progress is not None and r < 0:
            progress(f"  warm-up {r + warmup + 1}/{warmup}")
        elif progress is not None:
            times = ", ".join(f"{getattr(k, 'label', k)} {s[-1] * 1e3:.1f} ms" for k, s in seconds.items())
            progress(f"  run {r + 1}/{runs}: {times}")

    return interleaved(runners, runs, warmup, around=sampler.phase, after_round=report)


def pipeline_halo(tile: int, default: int, stride: int = 8) -> int:
    """The run's default halo, shrunk on the stride grid for small tiles so at least half the tile is core."""
    return min(default, tile // 4 // stride * stride)


def write_test_slide(path: Path, side: int, channels: int, seed: int = 0) -> Path:
    """A tiled uint8 TIFF of side x side pixels with tissue-like smooth texture (content does not change timing)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((side // 16 + 2, side // 16 + 2, channels))
    image = np.kron(coarse, np.ones((16, 16, 1)))[:side, :side]
    data = ((0.8 * image + 0.2 * rng.random(image.shape)) * 255).round().astype(np.uint8)
    rgb = channels == 3
    tifffile.imwrite(path, data if rgb else data[..., 0], photometric="rgb" if rgb else "minisblack", tile=(64, 64))
    return path


def measure_pipeline(
    backend: Backend, tile: int, batch: int, work_dir: Path, log: Callable[[str], None] = print, bare_runs: int = 3
) -> PipelineResult:
    """Run `backend` (an MFPINet engine) over a generated slide of 4 x 4 tile cores with run_slide.

    Engine throughput counts every computed tile's output (halos included) per second of the tile
    loop; the bare engine is timed on `bare_runs` batches of the same shape just before and just
    after, so both see the same machine load. Halo overhead is reported apart (a tiling choice).
    """
    spec = backend.spec
    halo = pipeline_halo(tile, DEFAULT_HALO, spec.stride)
    side = TILES_PER_SIDE * (tile - 2 * halo)
    slide = write_test_slide(work_dir / f"bench-slide-{side}.tif", side, spec.channels)
    options = RunOptions(tile=tile, batch=batch, halo=halo, overwrite=True, progress=False, log=log, pixel_size_um=0.5)
    tiles = np.random.default_rng(0).integers(0, 256, (batch, tile, tile, spec.channels), dtype=np.uint8)
    bare = [timed(lambda: backend.run(tiles)) for _ in range(bare_runs)]
    summary = run_slide(slide, work_dir / f"bench-slide-{side}.ome.zarr", backend, options)
    bare += [timed(lambda: backend.run(tiles)) for _ in range(bare_runs)]
    computed = summary.tiles_computed * spec.planes * (spec.scale * tile) ** 2  # output voxels, halos included
    useful = spec.planes * (spec.scale * side) ** 2
    return PipelineResult(
        backend=backend.kind.value,
        slide_side=side,
        tile=summary.tile,
        halo=summary.halo,
        batch=summary.batch,
        tiles=summary.tiles_computed,
        loop_seconds=summary.inference_seconds,
        total_seconds=summary.seconds,
        engine_megavoxels_per_s_in_pipeline=computed / summary.inference_seconds / 1e6,
        bare_engine_megavoxels_per_s=computed / summary.tiles_computed * batch / float(np.median(bare)) / 1e6,
        end_to_end_megavoxels_per_s=useful / summary.seconds / 1e6,
        halo_overhead=1.0 - useful / computed,
    )
