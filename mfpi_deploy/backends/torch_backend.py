"""PyTorch eager backend: the reference that every exported engine is checked against."""
from __future__ import annotations

import numpy as np
import torch

from mfpi_deploy.backends.base import Backend, BackendKind, EngineSpec
from mfpi_deploy.checkpoint.io import Checkpoint
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models.factory import Architecture
from mfpi_deploy.models.uint8_io import Uint8DeepZ, Uint8MFPINet


class TorchBackend(Backend):
    """Runs a checkpoint's network in eager PyTorch on the CPU (or a given device)."""

    kind = BackendKind.TORCH

    def __init__(self, checkpoint: Checkpoint, *, device: str = "cpu", threads: int | None = None) -> None:
        self.spec = EngineSpec.from_card(checkpoint.card)
        self.device = torch.device(device)
        if threads:
            torch.set_num_threads(threads)
        net = checkpoint.model.to(self.device).eval()
        wrap = Uint8DeepZ if checkpoint.card.architecture == Architecture.DEEPZ.value else Uint8MFPINet
        self.module = wrap(net).eval()

    @torch.inference_mode()
    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        self.spec.check_batch(tiles)
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        if self.spec.needs_dpm:
            if dpm is None:
                raise MfpiError("Deep-Z needs a DPM value per tile")
            y = self.module(x, torch.as_tensor(dpm, dtype=torch.float32, device=self.device))
            return y.unsqueeze(1).cpu().numpy()
        return self.module(x).cpu().numpy()
