"""Interleaving, warm-up, per-model memory peaks, and the stack each model computes."""
from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.backends.torch_backend import TorchBackend
from mfpi_deploy.bench.memory import PeakSampler, process_peak_rss_bytes
from mfpi_deploy.bench.runner import check_output, measure_interleaved, stack_runner
from mfpi_deploy.bench.workload import BenchModel, make_workloads
from mfpi_deploy.checkpoint import Checkpoint, ModelCard
from mfpi_deploy.models import create_model


def test_rounds_alternate_order_and_skip_warmup():
    calls: list[str] = []
    runners = {BenchModel.MFPINET: lambda: calls.append("A"), BenchModel.DEEPZ: lambda: calls.append("B"),
               "matmul": lambda: calls.append("M")}
    with PeakSampler() as sampler:
        times = measure_interleaved(runners, runs=3, warmup=1, sampler=sampler)
    assert "".join(calls) == "ABM" + "MBA" + "ABM" + "MBA"  # neither runner always goes first
    assert [len(times.seconds[k]) for k in runners] == [3, 3, 3]
    assert all(t >= 0 for k in runners for t in times.seconds[k])
    for k in runners:
        assert times.host_peak_bytes[k] > 0
    assert set(sampler.host_peak) == {"mfpinet", "deepz", "matmul"}


def test_sampler_attributes_peaks_to_phases():
    with PeakSampler(interval_s=0.001) as sampler:
        sampler.phase("small")
        sampler.phase("big")
        block = np.ones(64 * 2**20, np.uint8)  # touch 64 MiB while "big" is the phase
        sampler.phase("big")
        sampler.phase(None)
        del block
    assert sampler.host_peak["big"] >= sampler.host_peak["small"] + 48 * 2**20
    assert process_peak_rss_bytes() >= sampler.host_peak["big"] - 4 * 2**20  # two counters, same memory


def _backend(arch: str) -> TorchBackend:
    config = {"width": 8} if arch == "mfpinet" else {"width": 8, "in_channels": 4}
    return TorchBackend(Checkpoint(create_model(arch, **config).eval(), ModelCard(arch, config)), threads=1)


def test_deepz_stack_runs_one_pass_per_plane_with_its_dpm():
    w = make_workloads(16, 2, mfpinet_width=8, deepz_width=8)[BenchModel.DEEPZ]
    backend = _backend("deepz")
    seen: list[np.ndarray] = []
    run = backend.run
    backend.run = lambda tiles, dpm=None: (seen.append(dpm), run(tiles, dpm=dpm))[1]  # type: ignore[method-assign]
    stack_runner(backend, w, w.sample_input())()
    assert len(seen) == 11
    assert [float(d[0]) for d in seen] == pytest.approx(w.dpm_values())
    assert all(d.shape == (2,) and d.dtype == np.float32 for d in seen)


def test_check_output_accepts_right_engine_and_rejects_wrong_one():
    ws = make_workloads(16, 1, mfpinet_width=8, deepz_width=8)
    check_output(_backend("mfpinet"), ws[BenchModel.MFPINET], ws[BenchModel.MFPINET].sample_input())
    check_output(_backend("deepz"), ws[BenchModel.DEEPZ], ws[BenchModel.DEEPZ].sample_input())
    with pytest.raises(RuntimeError, match="expected uint8"):
        # An MFPINet engine fed the Deep-Z workload returns 11 planes at twice the size.
        check_output(_backend("mfpinet"), ws[BenchModel.MFPINET].__class__(
            BenchModel.MFPINET, 1, 32, 32, 3, 11, 1, 0, 0), ws[BenchModel.DEEPZ].sample_input())
