"""TensorRT engine build and run (GPU only): against onnxruntime, within the fp16 gate."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from mfpi_deploy.export.accuracy import psnr_per_plane
from mfpi_deploy.export.api import export_model, rebuild_engine
from tests.mfpi_deploy.export.engines import export_options, tiny_checkpoint


def _gpu_reason() -> str | None:
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed (no NVIDIA GPU here)"
    import pycuda.driver as cuda

    try:
        cuda.init()
        return None if cuda.Device.count() else "no CUDA device"
    except cuda.Error as exc:  # pragma: no cover - depends on the machine
        return f"CUDA unusable: {exc}"


REASON = _gpu_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


@pytest.fixture(scope="module")
def trt_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    ckpt = tiny_checkpoint(root / "ckpt", "mfpinet", width=8)
    return export_model(
        ckpt, root / "engine", export_options(fp16=True, trt=True, tiles=(32, 64), batches=(2,)), log=print
    )


def test_engine_build_records_target_and_accuracy(trt_folder):
    m = json.loads((trt_folder / "manifest.json").read_text())
    assert (trt_folder / "model.engine").is_file() and (trt_folder / "timing.cache").is_file()
    assert m["gpu"]["name"] and m["gpu"]["compute_capability"] and m["tools"]["tensorrt"] == m["gpu"]["tensorrt"]
    assert m["artifacts"]["engine"]["precision"] == "fp16" and len(m["engine"]["profiles"]) == 2
    assert m["accuracy"]["engine"]["min_psnr_db"] >= 45


def test_engine_matches_onnxruntime_within_fp16_gate(trt_folder):
    from mfpi_deploy.backends.select import open_backend

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, s, s, 1), dtype=np.uint8) for n, s in [(2, 64), (1, 32), (2, 16), (2, 64)]]
    with open_backend("trt", trt_folder) as engine, open_backend("ort-cpu", trt_folder, threads=1) as ref:
        outs = list(engine.run_many(batches))  # two batches in flight
        for tiles, out in zip(batches, outs):
            want = ref.run(tiles)
            assert out.shape == want.shape and min(psnr_per_plane(out, want)) >= 45
        assert np.array_equal(engine.run(batches[0]), outs[0])


def test_rebuild_keeps_folder_working(trt_folder):
    rebuild_engine(trt_folder, log=print)
    m = json.loads((trt_folder / "manifest.json").read_text())
    assert m["gpu"] is not None and "engine" in m["artifacts"]
