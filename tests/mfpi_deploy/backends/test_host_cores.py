"""Backend.host_cores: the CPU cores an engine keeps busy, from which a run sizes its encoder pool."""

from __future__ import annotations

import os
from pathlib import Path

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.backends.ort_backend import OrtBackend
from mfpi_deploy.backends.sweep import PlaneSweep
from mfpi_deploy.backends.torch_backend import TorchBackend
from mfpi_deploy.checkpoint import load_checkpoint
from tests.mfpi_deploy.run.helpers import tiny_checkpoint


def test_cpu_engines_count_their_threads(tmp_path: Path, mfpinet_engine: Path) -> None:
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "ckpt"))
    assert TorchBackend(ckpt, threads=1).host_cores() == 1
    with OrtBackend(mfpinet_engine, threads=1) as one, OrtBackend(mfpinet_engine) as every:
        assert (one.host_cores(), every.host_cores()) == (1, os.cpu_count())


def test_device_engines_leave_every_core_to_the_host() -> None:
    from mfpi_deploy.backends.trt_backend import TrtBackend

    assert "host_cores" not in vars(TrtBackend)  # TensorRT keeps the base's answer: no host cores
    assert Backend.host_cores(object.__new__(TrtBackend)) == 0


def test_a_plane_sweep_keeps_the_cores_of_the_engine_it_sweeps(deepz_engine: Path) -> None:
    with OrtBackend(deepz_engine, threads=1) as inner:
        assert PlaneSweep(inner).host_cores() == 1
