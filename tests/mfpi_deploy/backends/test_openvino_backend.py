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
