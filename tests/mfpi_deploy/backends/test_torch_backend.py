"""The torch backend: uint8 in, uint8 planes out, matching the float network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.backends.torch_backend import TorchBackend
from mfpi_deploy.checkpoint import Checkpoint, ModelCard
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import create_model
from mfpi_deploy.tiling import TileProfile


def _ckpt(arch: str = "mfpinet", **config) -> Checkpoint:
    net = create_model(arch, **config).eval()
    return Checkpoint(net, ModelCard(architecture=arch, config=config))


def test_torch_backend_runs_uint8_batch():
    ckpt = _ckpt(width=8)
    with TorchBackend(ckpt) as backend:
        tiles = np.random.default_rng(0).integers(0, 256, (2, 16, 32, 3), dtype=np.uint8)
        out = backend.run(tiles)
        assert out.dtype == np.uint8 and out.shape == backend.spec.output_shape(2, 16, 32)
        with torch.no_grad():
            ref = ckpt.model(torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255)
        ref = ref.reshape(2, 11, 3, 32, 64).permute(0, 1, 3, 4, 2).numpy()
        assert np.abs(out.astype(int) - np.rint(ref * 255)).max() == 0


def test_spec_checks_batches():
    spec = EngineSpec.from_card(
        ModelCard(architecture="mfpinet", config={"in_channels": 1}),
        profiles=(TileProfile(opt_tile=64, min_tile=32, max_tile=128, max_batch=4),),
    )
    assert (spec.channels, spec.planes, spec.scale, spec.stride) == (1, 11, 2, 8)
    spec.check_batch(np.zeros((4, 64, 32, 1), np.uint8))
    for bad, msg in [
        (np.zeros((1, 64, 64, 3), np.uint8), "1 channel"),
        (np.zeros((1, 60, 64, 1), np.uint8), "8-pixel grid"),
        (np.zeros((1, 256, 256, 1), np.uint8), "outside the engine's profiles"),
        (np.zeros((5, 64, 64, 1), np.uint8), "outside the engine's profiles"),
        (np.zeros((1, 64, 64, 1), np.float32), "must be uint8"),
    ]:
        with pytest.raises(MfpiError, match=msg):
            spec.check_batch(bad)


def test_deepz_backend_one_plane_per_pass():
    with TorchBackend(_ckpt("deepz", width=8)) as backend:
        assert backend.spec.needs_dpm and backend.spec.planes == 1
        tiles = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        a = backend.run(tiles, dpm=np.array([-2.5, -2.5], np.float32))
        b = backend.run(tiles, dpm=np.array([2.5, 2.5], np.float32))
        assert a.shape == (2, 1, 32, 32, 3)
        assert not np.array_equal(a, b)


def test_backend_kind_parse():
    assert BackendKind.parse("ort-cpu") is BackendKind.ORT_CPU
    with pytest.raises(MfpiError, match="unknown backend kind 'cuda'.*ort-cuda"):
        BackendKind.parse("cuda")


def test_deepz_without_dpm_is_a_clear_error():
    with TorchBackend(_ckpt("deepz", width=8)) as backend:
        with pytest.raises(MfpiError, match="DPM value per tile"):
            backend.run(np.zeros((1, 16, 16, 3), np.uint8))


def test_torch_computes_on_the_gpu_when_pytorch_sees_one(monkeypatch) -> None:
    """Unless a device is named: CUDA when PyTorch sees a GPU, else the CPU; the facts a run
    records (and a resume must match) say where it computed."""
    from mfpi_deploy.backends.torch_backend import default_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"
    model = create_model("mfpinet", in_channels=3, width=4)
    backend = TorchBackend(Checkpoint(model, ModelCard("mfpinet", {"in_channels": 3, "width": 4})))
    assert backend.device.type == "cpu" and backend.facts().device == "cpu"
    assert backend.describe().endswith(", cpu)") and backend.host_cores() > 0
