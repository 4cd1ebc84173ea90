"""onnxruntime backend on the CPU provider: the worker thread that keeps two batches going on a
GPU provider, exercised here by giving the CPU backend that depth."""

from __future__ import annotations

import numpy as np

from mfpi_deploy.backends.ort_backend import DEVICE_IN_FLIGHT, OrtBackend
from mfpi_deploy.backends.select import open_backend


def test_batches_on_the_worker_thread_equal_direct_runs_even_when_the_caller_reuses_its_buffer(
    mfpinet_engine, monkeypatch
):
    rng = np.random.default_rng(3)
    batches = [rng.integers(0, 256, (n, 32, 32, 1), dtype=np.uint8) for n in (2, 1, 2, 1)]
    with open_backend("ort-cpu", mfpinet_engine, threads=1, log=lambda _: None) as backend:
        assert backend.in_flight() == 1 and isinstance(backend.submit(batches[0]), np.ndarray)
        direct = [backend.run(b) for b in batches]
        monkeypatch.setattr(OrtBackend, "in_flight", lambda self: DEVICE_IN_FLIGHT)

        def reused():  # one buffer refilled for each batch, as a reader may do
            for b in batches:
                buf = np.empty_like(b)
                buf[:] = b
                yield buf
                buf[:] = 0

        queued = list(backend.run_many(reused()))
        assert backend._worker is not None
    assert backend._worker is None  # closed with the backend
    assert all(np.array_equal(a, b) for a, b in zip(queued, direct, strict=True))
