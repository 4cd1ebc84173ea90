"""onnxruntime CUDA (GPU only): the fp32 and fp16 graphs against onnxruntime CPU."""

from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.backends.ort_backend import CUDA_EP, available_providers
from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.export.accuracy import parity, psnr_per_plane

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        CUDA_EP not in available_providers(), reason="onnxruntime has no CUDAExecutionProvider (no GPU here)"
    ),
]


@pytest.mark.parametrize("fp16", [False, True])
def test_ort_cuda_matches_cpu(mfpinet_engine, fp16):
    tiles = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 1), dtype=np.uint8)
    quiet = {"log": lambda _: None}
    with (
        open_backend("ort-cuda", mfpinet_engine, fp16=fp16, **quiet) as gpu,
        open_backend("ort-cpu", mfpinet_engine, threads=1, **quiet) as cpu,
    ):
        got, want = gpu.run(tiles), cpu.run(tiles)
    assert min(psnr_per_plane(got, want)) >= 45
    if not fp16:  # cuDNN may use TF32; still within rounding on most values
        assert parity(got, want).share_differing < 0.05
