"""PyTorch eager backend: the reference that every exported engine is checked against."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        self.spec.check_batch(tiles)
        with torch_threads(self.threads):
            x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
            if self.spec.needs_dpm:
                if dpm is None:
                    raise MfpiError("Deep-Z needs a DPM value per tile")
                y = self.module(x, torch.as_tensor(dpm, dtype=torch.float32, device=self.device))
                return y.unsqueeze(1).cpu().numpy()
            return self.module(x).cpu().numpy()

    def host_cores(self) -> int:
        return (self.threads or torch.get_num_threads()) if self.device.type == "cpu" else 0

    def device_type(self) -> str:
        return self.device.type

    def describe(self) -> str:
        return f"{self.kind.value} ({self.spec.architecture}, {self.spec.precision}, {self.device})"
