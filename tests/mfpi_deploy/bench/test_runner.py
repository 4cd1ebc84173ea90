"""Interleaving, warm-up, per-runner memory peaks, the stack each model computes, the matmul reference, and the
pipeline mode's helpers (halo for small tiles, the generated slide)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from mfpi_deploy.backends.torch_backend import TorchBackend
from mfpi_deploy.bench.runner import (
    PeakSampler,
    matmul_runner,
    measure_interleaved,
    pipeline_halo,
    stack_runner,
    write_test_slide,
)
from mfpi_deploy.bench.workload import BenchModel, make_workloads
from mfpi_deploy.checkpoint import Checkpoint, ModelCard
from mfpi_deploy.models import create_model


def test_rounds_alternate_order_and_skip_warmup():
    calls: list[str] = []
    runners = {
        BenchModel.MFPINET: lambda: calls.append("A"),
        BenchModel.DEEPZ: lambda: calls.append("B"),
        "matmul": lambda: calls.append("M"),
    }
    progress: list[str] = []
    with PeakSampler() as sampler:
        times = measure_interleaved(runners, runs=3, warmup=1, sampler=sampler, progress=progress.append)
    assert "".join(calls) == "ABM" + "MBA" + "ABM" + "MBA"  # no runner always goes first
    assert [len(times[k]) for k in runners] == [3, 3, 3]
    assert all(t >= 0 for k in runners for t in times[k])
    assert set(sampler.host_peak) == set(runners) and all(v > 0 for v in sampler.host_peak.values())
    assert progress[0] == "  warm-up 1/1" and progress[-1].startswith("  run 3/3: MFPINet ")
    with pytest.raises(ValueError):
        measure_interleaved(runners, runs=0, warmup=0, sampler=sampler)


def test_sampler_attributes_peaks_to_phases():
    base = [0]
    with PeakSampler(interval_s=0.001, device_probe=lambda: base[0]) as sampler:
        sampler.phase("small")
        sampler.phase("big")
        block = np.ones(64 * 2**20, np.uint8)  # touch 64 MiB while "big" is the phase
        base[0] = 1000  # "device memory" grows by 1000 bytes in this phase
        sampler.phase("big")
        sampler.phase(None)
        del block
    assert sampler.host_peak["big"] >= sampler.host_peak["small"] + 48 * 2**20
    assert sampler.device_peak == {"small": 0, "big": 1000}  # relative to the level at start


def _backend(arch: str) -> TorchBackend:
    config = {"width": 8} if arch == "mfpinet" else {"width": 8, "in_channels": 4}
    return TorchBackend(Checkpoint(create_model(arch, **config).eval(), ModelCard(arch, config)), threads=1)


def test_deepz_stack_runs_one_pass_per_plane_with_its_dpm():
    w = make_workloads(16, 2, width=8)[BenchModel.DEEPZ]
    backend = _backend("deepz")
    seen: list[np.ndarray] = []
    submit = backend.submit  # every pass of run_many starts here
    backend.submit = lambda tiles, dpm=None: (seen.append(dpm), submit(tiles, dpm=dpm))[1]  # type: ignore[method-assign]
    stack_runner(backend, w, w.sample_input())()
    assert len(seen) == 11
    assert [float(d[0]) for d in seen] == pytest.approx(w.dpm_values())
    assert all(d.shape == (2,) and d.dtype == np.float32 for d in seen)


def test_mfpinet_stack_is_one_pass():
    w = make_workloads(16, 1, width=8)[BenchModel.MFPINET_RESIDUAL]
    out = stack_runner(_backend("mfpinet"), w, w.sample_input())()
    assert out.shape == w.output_shape and out.dtype == np.uint8


def test_matmul_runner_computes_the_seeded_product():
    threads = torch.get_num_threads()
    try:
        run = matmul_runner(64, "cpu", threads=1)
        assert torch.get_num_threads() == 1  # the reference runs on the benchmark's threads
    finally:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(64, 64, generator=gen), torch.rand(64, 64, generator=gen)
    got = run()
    assert got.shape == (64, 64) and got.dtype == torch.float32
    torch.testing.assert_close(got, a @ b)


def test_halo_is_the_default_unless_the_tile_is_small():
    assert pipeline_halo(384, 32) == 32
    assert pipeline_halo(128, 32) == 32
    assert pipeline_halo(128, 48) == 32
    assert pipeline_halo(64, 32) == 16
    assert pipeline_halo(32, 32) == 8
    assert pipeline_halo(8, 32) == 0
    for tile in (16, 32, 48, 64, 128):
        h = pipeline_halo(tile, 32)
        assert h % 8 == 0 and tile - 2 * h >= tile // 2


def test_generated_slide(tmp_path):
    for channels in (1, 3):
        path = write_test_slide(tmp_path / f"s{channels}.tif", 96, channels)
        data = tifffile.imread(path)
        assert data.shape == ((96, 96, 3) if channels == 3 else (96, 96)) and data.dtype.name == "uint8"
        assert data.std() > 10
