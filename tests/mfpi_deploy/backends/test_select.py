"""open_backend: every CPU backend gives the same uint8 output; auto explains its choice."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.backends.ort_backend import CUDA_EP, OrtBackend, available_providers
from mfpi_deploy.backends.select import choose_backend, open_backend, unavailable_reason
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.accuracy import parity, psnr_per_plane
from mfpi_deploy.models import stack_dpm_values

HAS_TRT = importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("pycuda") is not None
HAS_CUDA_EP = CUDA_EP in available_providers()
cpu_only = pytest.mark.skipif(HAS_TRT or HAS_CUDA_EP, reason="this machine has a GPU backend")


@cpu_only
def test_auto_falls_back_to_ort_cpu_and_says_why(mfpinet_engine, monkeypatch):
    import mfpi_deploy.backends.select as select

    real_find_spec = select.importlib.util.find_spec
    monkeypatch.setattr(
        select.importlib.util, "find_spec", lambda name: None if name == "openvino" else real_find_spec(name)
    )
    logs: list[str] = []
    with open_backend("auto", mfpinet_engine, threads=1, log=logs.append, precision="fp32") as backend:
        assert backend.kind is BackendKind.ORT_CPU and backend.spec.precision == "fp32"
    (line,) = logs
    assert line.startswith("backend: ort-cpu fp32 (the only CPU engine here that passed its gate; skipped trt: ")
    assert "not installed" in line and "ort-cuda: onnxruntime has no CUDAExecutionProvider" in line
    assert "openvino: openvino is not installed (pip install '.[openvino]')" in line


@cpu_only
def test_explicit_gpu_backends_are_refused_with_the_reason(mfpinet_engine):
    with pytest.raises(MfpiError, match="backend trt cannot run .* not installed"):
        open_backend("trt", mfpinet_engine, log=lambda _: None)
    with pytest.raises(MfpiError, match="no CUDAExecutionProvider"):
        open_backend("ort-cuda", mfpinet_engine, log=lambda _: None)


def test_no_engine_in_folder_is_a_reason(mfpinet_engine, monkeypatch):
    import mfpi_deploy.backends.select as select

    monkeypatch.setattr(select.importlib.util, "find_spec", lambda name: object())  # pretend installed
    assert "no model.engine in folder" in unavailable_reason(BackendKind.TRT, mfpinet_engine)


def test_checkpoints_run_on_torch_only(mfpinet_engine):
    logs: list[str] = []
    with open_backend("auto", mfpinet_engine.parent / "ckpt", log=logs.append) as backend:
        assert backend.kind is BackendKind.TORCH
    assert "torch" in logs[0] and "checkpoint" in logs[0]
    with pytest.raises(MfpiError, match="not an engine folder"):
        open_backend("ort-cpu", mfpinet_engine.parent / "ckpt")


@pytest.mark.parametrize("shape", [(2, 16, 24, 1), (1, 64, 64, 1), (3, 40, 8, 1)])
def test_cpu_backends_agree(mfpinet_engine, shape):
    """torch (via the folder's checkpoint copy) and ort-cpu: equal up to rounding (measured max 1 level)."""
    tiles = np.random.default_rng(shape[1]).integers(0, 256, shape, dtype=np.uint8)
    quiet = {"threads": 1, "log": lambda _: None}
    with open_backend("torch", mfpinet_engine, **quiet) as t, open_backend("ort-cpu", mfpinet_engine, **quiet) as o:
        a, b = t.run(tiles), o.run(tiles)
        assert t.spec == o.spec and t.spec.profiles[0].opt_tile == 64
    assert a.shape == b.shape == (shape[0], 11, 2 * shape[1], 2 * shape[2], 1)
    p = parity(a, b)
    assert p.max_abs_diff <= 1 and p.share_differing < 1e-3


def test_deepz_backends_agree(deepz_engine):
    tiles = np.random.default_rng(9).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    dpm = np.array([-1.0, 2.0], np.float32)
    raw = {"threads": 1, "per_plane": True}
    with open_backend("torch", deepz_engine, **raw) as t, open_backend("ort-cpu", deepz_engine, **raw) as o:
        a, b = t.run(tiles, dpm), o.run(tiles, dpm)
        with pytest.raises(MfpiError, match="DPM"):
            o.run(tiles)
        many = list(o.run_many([(tiles, dpm), (tiles[:1], dpm[:1])]))
        planes = [o.run(tiles, np.full(2, v, np.float32))[:, 0] for v in stack_dpm_values(11)]
    assert a.shape == b.shape == (2, 1, 64, 64, 3) and parity(a, b).max_abs_diff <= 1
    assert np.array_equal(many[0], b) and np.array_equal(many[1], b[:1])
    with open_backend("ort-cpu", deepz_engine, threads=1) as stack:  # as mfpi-run opens it: the whole stack
        assert stack.spec.planes == 11 and not stack.spec.needs_dpm
        np.testing.assert_array_equal(stack.run(tiles), np.stack(planes, axis=1))


def test_ort_fp16_graph_on_cpu_within_gate(mfpinet_engine):
    tiles = np.random.default_rng(4).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    with OrtBackend(mfpinet_engine, threads=1) as f32, OrtBackend(mfpinet_engine, threads=1, fp16=True) as f16:
        assert f16.spec.precision == "fp16" and "CPUExecutionProvider" in f16.describe()
        assert min(psnr_per_plane(f16.run(tiles), f32.run(tiles))) >= 45


def test_open_backend_fp16_choice(mfpinet_engine):
    with open_backend("ort-cpu", mfpinet_engine, threads=1, log=lambda _: None) as default:
        assert default.spec.precision == "fp32"  # float16 is slow on CPUs: not the default there
    with open_backend("ort-cpu", mfpinet_engine, threads=1, fp16=True, log=lambda _: None) as half:
        assert half.spec.precision == "fp16"


def test_ort_checks_input(mfpinet_engine):
    with OrtBackend(mfpinet_engine, threads=1) as backend:
        with pytest.raises(MfpiError, match="8-pixel grid"):
            backend.run(np.zeros((1, 20, 16, 1), np.uint8))
        with pytest.raises(MfpiError, match="1 channel"):
            backend.run(np.zeros((1, 16, 16, 3), np.uint8))


def test_choose_backend_order(mfpinet_engine, monkeypatch):
    import mfpi_deploy.backends.select as select
    from mfpi_deploy.backends.probe import Candidate
    from mfpi_deploy.engine.precision import Precision

    reasons = {BackendKind.TRT: "tensorrt not installed", BackendKind.ORT_CUDA: None}
    monkeypatch.setattr(select, "unavailable_reason", lambda kind, source, precision=None: reasons.get(kind))
    assert choose_backend(mfpinet_engine) == (
        Candidate(BackendKind.ORT_CUDA, Precision.FP16),
        ["trt: tensorrt not installed"],
        "",
    )
    reasons[BackendKind.TRT] = None
    assert choose_backend(mfpinet_engine)[:2] == (Candidate(BackendKind.TRT, Precision.FP32), [])


def test_ort_provider_lists(tmp_path):
    from mfpi_deploy.backends.ort_backend import TRT_EP, ort_providers

    assert ort_providers(BackendKind.ORT_CPU, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(MfpiError, match="no CUDAExecutionProvider"):
        ort_providers(BackendKind.ORT_CUDA, ["CPUExecutionProvider"])
    gpu = [TRT_EP, CUDA_EP, "CPUExecutionProvider"]
    assert ort_providers(BackendKind.ORT_CUDA, gpu, device_id=1) == [
        (CUDA_EP, {"device_id": 1}),
        "CPUExecutionProvider",
    ]
    first = ort_providers(BackendKind.ORT_CUDA, gpu, trt_ep=True, trt_cache=tmp_path)[0]
    assert first[0] == TRT_EP and first[1]["trt_engine_cache_path"] == str(tmp_path)
    with pytest.raises(MfpiError, match="no TensorrtExecutionProvider"):
        ort_providers(BackendKind.ORT_CUDA, [CUDA_EP], trt_ep=True)


@cpu_only
def test_engine_from_another_gpu_is_skipped_by_auto_and_refused_by_trt(mfpinet_engine, tmp_path, monkeypatch):
    """Pretend TensorRT is installed and the folder holds an engine built on another GPU."""
    import shutil

    import mfpi_deploy.backends.select as select
    import mfpi_deploy.engine.cuda as cuda
    from mfpi_deploy.engine.manifest import Artifact, GpuTarget, Manifest
    from mfpi_deploy.fileio import file_sha256

    folder = tmp_path / "engine"
    shutil.copytree(mfpinet_engine, folder)
    (folder / "model.engine").write_bytes(b"plan")
    manifest = Manifest.read(folder)
    manifest.artifacts["engine"] = Artifact("model.engine", file_sha256(folder / "model.engine"), "fp16")
    manifest.gpu = GpuTarget("NVIDIA A100-SXM4-40GB", "8.0", "10.9.0.34")
    manifest.write(folder)
    real_find_spec = select.importlib.util.find_spec
    monkeypatch.setattr(
        select.importlib.util,
        "find_spec",
        lambda name: object() if name in ("tensorrt", "pycuda") else real_find_spec(name),
    )
    monkeypatch.setattr(cuda, "current_target", lambda device=0: GpuTarget("NVIDIA L4", "8.9", "10.9.0.34"))
    logs: list[str] = []
    with open_backend("auto", folder, threads=1, log=logs.append, measure=False) as backend:
        assert backend.kind in (BackendKind.OPENVINO, BackendKind.ORT_CPU)
    assert "trt: " in logs[0] and "built for GPU NVIDIA A100-SXM4-40GB (sm 8.0), this machine has NVIDIA L4" in logs[0]
    with pytest.raises(MfpiError, match="backend trt cannot run .*built for GPU NVIDIA A100.*rebuild"):
        open_backend("trt", folder, log=lambda _: None)


@cpu_only
def test_auto_runs_the_checkpoint_in_pytorch_on_a_gpu_without_trt_or_ort_cuda(mfpinet_engine, monkeypatch, tmp_path):
    """A lab with a GPU but neither TensorRT nor onnxruntime-gpu: auto takes the folder's checkpoint
    in PyTorch on the GPU (fp32) rather than a CPU engine; asked for another precision, a CPU engine."""
    import json
    import shutil

    import torch

    from mfpi_deploy.backends.probe import Candidate
    from mfpi_deploy.engine.precision import Precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cand, skipped, _ = choose_backend(mfpinet_engine, measure=False)
    assert cand.kind is not BackendKind.TORCH and "torch: PyTorch sees no CUDA GPU" in skipped

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cand, skipped, how = choose_backend(mfpinet_engine, measure=False)
    assert cand == Candidate(BackendKind.TORCH, Precision.FP32) and how == "the checkpoint in PyTorch on the GPU"
    assert [line.split(":")[0] for line in skipped] == ["trt", "ort-cuda"]
    cand, _, _ = choose_backend(mfpinet_engine, "int8", measure=False)
    assert cand.kind is not BackendKind.TORCH and cand.precision is Precision.INT8

    old = tmp_path / "old-export"  # a folder exported before the weights were kept
    shutil.copytree(mfpinet_engine, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["artifacts"]["weights"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    cand, skipped, _ = choose_backend(old, measure=False)
    assert cand.kind is not BackendKind.TORCH and any("no checkpoint weights" in line for line in skipped)
