"""Peak memory per labelled phase: host RSS (psutil) and, on a GPU, device memory in use.

A background thread samples every few milliseconds and keeps the maximum seen under the
current label, so interleaved runs of two models each get their own peak.
"""
from __future__ import annotations

import resource
import sys
import threading
from typing import Callable

import psutil

MIB = 1024 * 1024


def process_peak_rss_bytes() -> int:
    """The whole process's peak resident set so far (getrusage; kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def cuda_used_bytes_probe() -> Callable[[], int] | None:
    """A function returning device memory in use (total - free, every process), or None without CUDA.

    Device-wide `mem_get_info` sees memory of onnxruntime and TensorRT as well as torch's.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if not torch.cuda.is_available():
        return None

    def used() -> int:
        free, total = torch.cuda.mem_get_info()
        return int(total - free)

    return used


class PeakSampler:
    """Samples host RSS (and device memory) in a thread; `phase(label)` sets where samples go.

    Use as a context manager. `host_peak[label]` / `device_peak[label]` are maxima in bytes;
    device values are relative to the device memory in use when the sampler started.
    """

    def __init__(self, interval_s: float = 0.002, device_probe: Callable[[], int] | None = None) -> None:
        self.interval_s = interval_s
        self.device_probe = device_probe
        self.host_peak: dict[str, int] = {}
        self.device_peak: dict[str, int] = {}
        self._label: str | None = None
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._device_base = device_probe() if device_probe else 0
        self._lock = threading.Lock()

    def phase(self, label: str | None) -> None:
        """Attribute samples from now on to `label` (None: stop attributing)."""
        with self._lock:
            self._label = label
        if label is not None:
            self._sample()  # at least one sample per phase, however short

    def _sample(self) -> None:
        with self._lock:
            label = self._label
            if label is None:
                return
            rss = self._proc.memory_info().rss
            self.host_peak[label] = max(self.host_peak.get(label, 0), rss)
            if self.device_probe is not None:
                used = max(0, self.device_probe() - self._device_base)
                self.device_peak[label] = max(self.device_peak.get(label, 0), used)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakSampler:
        self._thread = threading.Thread(target=self._loop, name="mfpi-bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
