"""TensorRT build and backend glue on the CPU, against stand-ins for tensorrt and pycuda.

The stand-ins (fake_gpu.py) run the engine's ONNX graph with onnxruntime, queue copies and
launches on streams until an event is synchronised, and enforce the profiles' shape ranges.
This checks our shapes, profiles, buffers, slots and manifest handling; the gpu-marked tests
in test_trt_backend.py check the real libraries.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.api import export_model, rebuild_engine
from mfpi_deploy.export.onnx_export import Exporter
from tests.mfpi_deploy.backends import fake_gpu
from tests.mfpi_deploy.export.conftest import ort_session
from tests.mfpi_deploy.export.engines import export_options, tiny_checkpoint

QUIET = {"log": lambda _: None}


@pytest.fixture
def trt_folder(tmp_path, monkeypatch):
    trt = fake_gpu.install(monkeypatch)
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    out = export_model(
        ckpt,
        tmp_path / "engine",
        export_options(
            exporter=Exporter.TORCHSCRIPT, fp16=True, trt=True, tiles=(16, 32), batches=(1, 3), workspace_gb=0.5
        ),
        **QUIET,
    )
    return out, trt


def test_build_uses_strongly_typed_fp16_graph_profiles_workspace_and_timing_cache(trt_folder):
    folder, trt = trt_folder
    (plan,) = trt.built
    assert plan["onnx"].endswith("model.fp16.onnx")
    assert plan["flags"] == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert plan["workspace"] == 1 << 29
    assert plan["profiles"] == [
        {"tiles": [[1, 8, 8, 1], [3, 16, 16, 1], [3, 16, 16, 1]]},
        {"tiles": [[1, 24, 24, 1], [3, 32, 32, 1], [3, 32, 32, 1]]},
    ]
    assert (folder / "timing.cache").read_bytes() == b"+"  # fresh cache, serialised after the build
    m = json.loads((folder / "manifest.json").read_text())
    assert m["gpu"] == {"name": "NVIDIA L4", "compute_capability": "8.9", "tensorrt": "10.9.0.34"}
    assert m["tools"]["tensorrt"] == "10.9.0.34" and m["workspace_gb"] == 0.5
    assert m["artifacts"]["engine"]["precision"] == "fp16"
    # the engine (here: the fp16 graph) is checked against onnxruntime fp32 at build time (the refusal: below)
    engine = m["accuracy"]["engine"]
    assert engine["threshold_db"] == 45 and engine["min_psnr_db"] == min(engine["psnr_db"])
    assert len(engine["psnr_db"]) == 11 and engine["parity"]["values"] > 0


def test_an_engine_that_differs_from_onnxruntime_is_refused_with_the_numbers(tmp_path, monkeypatch):
    """A wrong engine (the stand-in adds 16 levels to every output value) against onnxruntime fp32:
    where nothing saturates the error is 16 levels everywhere, PSNR 20 log10(255 / 16) = 24.0 dB; values
    that saturate at 255 err less, so the lowest plane is at or above that, and far under the 45 dB floor."""
    fake_gpu.install(monkeypatch, error_levels=16)
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    options = export_options(exporter=Exporter.TORCHSCRIPT, fp16=True, trt=True, tiles=(16, 32), batches=(1, 3))
    with pytest.raises(MfpiError) as err:
        export_model(ckpt, tmp_path / "engine", options, **QUIET)
    msg = str(err.value)
    pattern = r"TensorRT engine differs from onnxruntime: lowest plane PSNR ([0-9.]+) dB < 45.0 dB \(planes \[(.*)\]\)"
    found = re.fullmatch(pattern, msg)
    assert found, msg
    planes = [float(v) for v in found[2].split(",")]
    assert len(planes) == 11 and f"{min(planes):.1f}" == found[1]
    assert 20 * np.log10(255 / 16) - 0.05 <= min(planes) < 45
    assert not (tmp_path / "engine").exists()


def test_auto_picks_trt_and_run_many_keeps_order_across_profiles(trt_folder):
    folder, _ = trt_folder
    logs: list[str] = []
    rng = np.random.default_rng(0)
    batches = [
        rng.integers(0, 256, (n, s, s, 1), dtype=np.uint8) for n, s in [(3, 32), (1, 16), (2, 8), (3, 24), (1, 32)]
    ]
    ref = ort_session(folder / "model.fp16.onnx")
    with open_backend("auto", folder, log=logs.append) as backend:
        assert backend.kind is BackendKind.TRT and logs == ["backend: trt fp16"]
        assert backend.spec.precision == "fp16" and backend.spec.profiles[1].min_tile == 24
        outs = list(backend.run_many(batches))
        for tiles, out in zip(batches, outs):
            assert np.array_equal(out, ref.run(None, {"tiles": tiles})[0])
        # submit/collect by hand: both slots in flight, collected out of order
        a, b = backend.submit(batches[0]), backend.submit(batches[1])
        with pytest.raises(MfpiError, match="both TensorRT slots are busy"):
            backend.submit(batches[2])
        assert np.array_equal(backend.collect(b), outs[1]) and np.array_equal(backend.collect(a), outs[0])
        # a caller that stops after the first output (an error, a closed generator) leaves no slot busy
        stream = backend.run_many(batches)
        assert np.array_equal(next(stream), outs[0])
        stream.close()
        assert np.array_equal(backend.run(batches[1]), outs[1])
        assert [np.array_equal(o, r) for o, r in zip(backend.run_many(batches), outs)] == [True] * len(batches)
        with pytest.raises(MfpiError, match="outside the engine's profiles"):
            backend.run(rng.integers(0, 256, (4, 16, 16, 1), dtype=np.uint8))
        with pytest.raises(MfpiError, match="outside the engine's profiles"):
            backend.run(rng.integers(0, 256, (1, 40, 40, 1), dtype=np.uint8))


def test_engine_from_another_gpu_or_version_is_refused_and_rebuilt(trt_folder, monkeypatch):
    folder, _ = trt_folder
    trt = fake_gpu.install(monkeypatch, gpu="NVIDIA H100 80GB HBM3", cc=(9, 0))
    with pytest.raises(MfpiError, match="built for GPU NVIDIA L4 \\(sm 8.9\\), this machine has NVIDIA H100"):
        open_backend("trt", folder, **QUIET)
    fake_gpu.install(monkeypatch, version="11.0.0.1")
    with pytest.raises(MfpiError, match="TensorRT 10.9.0.34, this machine has 11.0.0.1"):
        open_backend("trt", folder, **QUIET)
    trt = fake_gpu.install(monkeypatch, gpu="NVIDIA H100 80GB HBM3", cc=(9, 0), version="11.0.0.1")
    rebuild_engine(folder, **QUIET)
    (plan,) = trt.built
    assert plan["timing_cache_in"] == "++"  # the kept timing cache was reused
    m = json.loads((folder / "manifest.json").read_text())
    assert m["gpu"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "tensorrt": "11.0.0.1"}
    assert "engine" not in m["accuracy"] and m["tools"]["tensorrt"] == "11.0.0.1"
    with open_backend("trt", folder, **QUIET) as backend:
        assert backend.run(np.zeros((1, 16, 16, 1), np.uint8)).shape == (1, 11, 32, 32, 1)


def test_deepz_engine_takes_dpm(tmp_path, monkeypatch):
    fake_gpu.install(monkeypatch)
    ckpt = tiny_checkpoint(tmp_path / "ckpt", "deepz", width=8)
    folder = export_model(
        ckpt,
        tmp_path / "engine",
        export_options(exporter=Exporter.TORCHSCRIPT, trt=True, fp16=True, tiles=(32,), batches=(2,)),
        **QUIET,
    )
    tiles = np.random.default_rng(2).integers(0, 256, (2, 32, 16, 3), dtype=np.uint8)
    dpm = np.array([-2.5, 2.5], np.float32)
    with open_backend("trt", folder, **QUIET, per_plane=True) as backend:
        out = backend.run(tiles, dpm)
        with pytest.raises(MfpiError, match="DPM"):
            backend.run(tiles)
    want = ort_session(folder / "model.fp16.onnx").run(None, {"tiles": tiles, "dpm": dpm})[0]
    assert out.shape == (2, 1, 64, 32, 3) and np.array_equal(out[:, 0], want)
