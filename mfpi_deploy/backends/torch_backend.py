"""PyTorch eager backend: the reference that every exported engine is checked against.

On the CPU a batch is computed when submitted. On a GPU it is queued on the device's stream
(copy in, network, copy out to page-locked memory) and `run_many` keeps two queued, so the
GPU computes the next batch while the host writes the last one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.checkpoint.io import Checkpoint
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models.factory import Architecture
from mfpi_deploy.models.uint8_io import Uint8DeepZ, Uint8MFPINet


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with `threads` intra-op threads, restoring the process's setting after it."""
    previous = torch.get_num_threads()
    if threads and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads and threads != previous:
            torch.set_num_threads(previous)


CUDA_IN_FLIGHT = 2  # batches queued on the GPU at once: one computes while the host takes the last


@dataclass(frozen=True)
class _InFlight:
    """A batch queued on a GPU: its planes land in `host` (page-locked) once `done` has fired."""

    host: torch.Tensor
    done: torch.cuda.Event


def default_device() -> str:
    """Where the torch backend computes unless told: the first CUDA GPU when PyTorch sees one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchBackend(Backend):
    """Runs a checkpoint's network in eager PyTorch on `device` (default: default_device()).

    `threads` applies to this backend's calls only; the process-wide torch setting is restored.
    """

    kind = BackendKind.TORCH

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        device: str | None = None,
        threads: int | None = None,
        spec: EngineSpec | None = None,
    ) -> None:
        self.spec = spec or EngineSpec.from_card(checkpoint.card)
        self.device = torch.device(device or default_device())
        self.threads = threads
        net = checkpoint.model.to(self.device).eval()
        wrap = Uint8DeepZ if checkpoint.card.architecture == Architecture.DEEPZ.value else Uint8MFPINet
        self.module = wrap(net).eval()

    @torch.inference_mode()
    def submit(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray | _InFlight:
        """On the CPU: the planes, computed now. On a GPU: the batch queued on the device's current
        stream (copy in, network, copy out into page-locked memory) and a ticket for `collect`."""
        self.spec.check_batch(tiles)
        if self.spec.needs_dpm and dpm is None:
            raise MfpiError("Deep-Z needs a DPM value per tile")
        x = torch.from_numpy(np.ascontiguousarray(tiles))
        if self.device.type == "cpu":
            with torch_threads(self.threads):
                return self._forward(x, dpm).numpy()
        y = self._forward(x.pin_memory().to(self.device, non_blocking=True), dpm)
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        host.copy_(y, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.device))
        return _InFlight(host, done)

    def collect(self, ticket: np.ndarray | _InFlight) -> np.ndarray:
        if isinstance(ticket, _InFlight):
            ticket.done.synchronize()
            return ticket.host.numpy()
        return ticket

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        return self.collect(self.submit(tiles, dpm))

    def in_flight(self) -> int:
        return CUDA_IN_FLIGHT if self.device.type == "cuda" else 1

    def _forward(self, x: torch.Tensor, dpm: np.ndarray | None) -> torch.Tensor:
        """uint8 tiles (on the device) -> uint8 planes (N, planes, sH, sW, C) on the device."""
        if self.spec.needs_dpm:
            return self.module(x, torch.as_tensor(dpm, dtype=torch.float32, device=self.device)).unsqueeze(1)
        return self.module(x)

    def host_cores(self) -> int:
        return (self.threads or torch.get_num_threads()) if self.device.type == "cpu" else 0

    def device_type(self) -> str:
        return self.device.type

    def describe(self) -> str:
        return f"{self.kind.value} ({self.spec.architecture}, {self.spec.precision}, {self.device})"
