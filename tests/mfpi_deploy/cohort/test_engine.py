"""EngineRef: how every process opens the run's engine, OpenVINO streams included."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfpi_deploy.cohort.engine import EngineRef
from mfpi_deploy.errors import MfpiError


@pytest.mark.parametrize(
    ("backend", "streams", "says"),
    [
        ("openvino", 0, "--streams must be at least 1, got 0"),
        ("ort-cpu", 2, "--streams sets OpenVINO's streams; backend ort-cpu has none"),
        ("torch", 1, "--streams sets OpenVINO's streams; backend torch has none"),
    ],
)
def test_streams_are_refused_where_they_mean_nothing(backend: str, streams: int, says: str) -> None:
    with pytest.raises(MfpiError, match=says):
        EngineRef(backend, "engine", streams=streams)


def test_open_gives_openvino_the_streams(mfpinet_engine: Path) -> None:
    pytest.importorskip("openvino")
    for streams, want in ((1, 1), (None, 2)):
        with EngineRef("openvino", str(mfpinet_engine), threads=2, precision="int8", streams=streams).open(
            log=lambda m: None
        ) as backend:
            assert backend.streams == want


def test_an_engine_without_streams_says_they_are_not_used(mfpinet_engine: Path) -> None:
    """`auto` may pick OpenVINO, where --streams applies, or another engine: that one says the
    option is not used rather than dropping it unseen (open_backend, as auto ends up calling it)."""
    from mfpi_deploy.backends.select import open_backend

    lines: list[str] = []
    with open_backend("ort-cpu", mfpinet_engine, threads=1, streams=1, log=lines.append):
        pass
    assert lines == ["streams: ort-cpu has none (OpenVINO's option), so 1 is not used"]
