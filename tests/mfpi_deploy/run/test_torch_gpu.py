"""The output path fed by a GPU engine where plain PyTorch is all a GPU machine has: `mfpi-run
--backend torch` computes on the GPU and writes what the CPU run writes, within the accuracy gate
every GPU variant must pass (45 dB per plane against the fp32 CPU output; PyTorch's CUDA
convolutions may use TF32). Needs an NVIDIA GPU that PyTorch sees; skipped without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.export.accuracy import psnr_per_plane
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run import RunOptions, run_slide
from tests.mfpi_deploy.run.helpers import textured, tiny_checkpoint, write_tiff

GATE_DB = 45.0  # the per-plane floor of every exported variant (mfpi-export's gates)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="PyTorch sees no CUDA GPU (no NVIDIA GPU here)"),
]


def _planes(path: Path) -> np.ndarray:
    return np.moveaxis(zarr_stack.open_level(path, 0)[:], 0, -1)[None]  # (1, Z, H, W, C)


def test_torch_run_on_the_gpu_matches_the_cpu_run(tmp_path: Path) -> None:
    src = write_tiff(tmp_path / "a.tif", textured(320, 352))
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=8)
    opts = dict(tile=160, batch=2, progress=False, log=lambda m: None)
    outs = {}
    for device in ("cpu", "cuda"):
        with open_backend("torch", ckpt, device=device, log=lambda m: None) as backend:
            assert backend.facts().device == device
            if device == "cuda":
                assert backend.host_cores() == 0  # a device engine: the encoders take every core
            outs[device] = tmp_path / f"{device}.ome.zarr"
            run_slide(src, outs[device], backend, RunOptions(**opts))
    with open_backend("auto", ckpt, log=lambda m: None) as backend:
        assert backend.facts().device == "cuda"  # unless told, torch computes on the GPU
    low = min(psnr_per_plane(_planes(outs["cuda"]), _planes(outs["cpu"])))
    assert low >= GATE_DB, f"lowest plane {low:.1f} dB against the CPU run"


def test_torch_on_the_gpu_queues_two_batches_and_hands_them_over_in_order(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=8)
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8) for n, s in [(2, 64), (1, 96), (3, 64), (1, 32)]]
    with open_backend("torch", ckpt, device="cuda", log=lambda m: None) as backend:
        assert backend.in_flight() == 2
        one_by_one = [backend.run(b) for b in batches]
        queued = list(backend.run_many(batches))
        stream = backend.run_many(batches)
        next(stream)
        stream.close()  # the batch still queued is waited for, not left on the device
    # the same network on the same device: queueing changes nothing in the values
    assert all(np.array_equal(a, b) for a, b in zip(queued, one_by_one, strict=True))
