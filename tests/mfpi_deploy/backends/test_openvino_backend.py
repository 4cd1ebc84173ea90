"""OpenVINO writes each batch straight into an array handed to the caller: later batches leave it alone."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")


def test_outputs_are_the_callers_and_survive_later_inferences(mfpinet_engine):
    from mfpi_deploy.backends.openvino_backend import OpenVinoBackend

    rng = np.random.default_rng(5)
    a, b = (rng.integers(0, 256, (2, 32, 32, 1), dtype=np.uint8) for _ in range(2))
    with OpenVinoBackend(mfpinet_engine, precision="int8", threads=1) as backend:
        first = backend.run(a)
        kept = first.copy()
        later = list(backend.run_many([b, a, b, b]))  # both requests of the shape used again
        again = backend.run(a)
    assert not np.array_equal(kept, later[0])  # the inputs give different planes
    assert np.array_equal(first, kept)  # ...and the first array was not written again
    assert np.array_equal(again, kept) and np.array_equal(later[1], kept)
    assert len({id(x) for x in later}) == len(later)


def test_stream_count_is_one_per_request_within_the_threads():
    from mfpi_deploy.backends.openvino_backend import stream_count

    assert stream_count(2, None, cores=2) == 2  # a tile loop's two requests compute side by side
    assert stream_count(2, 1) == 1  # one thread: one stream, whatever the requests
    assert stream_count(2, None, streams=1, cores=16) == 1  # asked for latency
    assert stream_count(1, 8) == 1
    assert stream_count(2, None, streams=4, cores=2) == 2
    assert stream_count(2, None, streams=0, cores=2) == 1


def test_compile_config_modes():
    from mfpi_deploy.backends.openvino_backend import compile_config
    from mfpi_deploy.engine.precision import Precision

    assert compile_config(2, Precision.INT8)["PERFORMANCE_HINT"] == "LATENCY"
    assert "NUM_STREAMS" not in compile_config(2, Precision.INT8)
    config = compile_config(2, Precision.INT8, streams=2)
    assert (config["PERFORMANCE_HINT"], config["NUM_STREAMS"], config["INFERENCE_NUM_THREADS"]) == ("THROUGHPUT", 2, 2)


def test_two_streams_compute_what_one_does(mfpinet_engine):
    """Throughput mode is a schedule, not another computation: the planes are the same bytes."""
    from mfpi_deploy.backends.openvino_backend import OpenVinoBackend

    rng = np.random.default_rng(7)
    batches = [rng.integers(0, 256, (1, 32, 32, 1), dtype=np.uint8) for _ in range(5)]
    with OpenVinoBackend(mfpinet_engine, precision="int8", threads=2, streams=2) as two:
        assert two.streams == 2 and two._get(1, 32, 32).model.get_property("NUM_STREAMS") == 2
        got = list(two.run_many(batches))
    with OpenVinoBackend(mfpinet_engine, precision="int8", threads=2, streams=1) as one:
        want = [one.run(b) for b in batches]
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
