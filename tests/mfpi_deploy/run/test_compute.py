from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.run import RunOptions, run_slide
from tests.mfpi_deploy.run.helpers import textured, tiny_backend, write_tiff


class CoresBackend(Backend):
    """Wraps a backend, says it keeps `cores` CPU cores busy, and records the run's writer threads."""

    def __init__(self, inner: Backend, cores: int) -> None:
        self.inner, self.cores = inner, cores
        self.kind, self.spec, self.identity = inner.kind, inner.spec, inner.identity
        self.writers: set[str] = set()

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        self.writers |= {t.name for t in threading.enumerate() if t.name.startswith("mfpi-write-")}
        return self.inner.run(tiles, dpm)

    def host_cores(self) -> int:
        return self.cores


@pytest.mark.parametrize(("engine_cores", "writers"), [(0, 4), (1, 3), (4, 1), (6, 1)])
def test_the_encoders_get_the_cores_the_engine_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_cores: int, writers: int
) -> None:
    monkeypatch.setattr("mfpi_deploy.run.compute.os.cpu_count", lambda: 4)
    src = write_tiff(tmp_path / "s.tif", textured(200, 200))
    backend = CoresBackend(tiny_backend(tmp_path), engine_cores)
    run_slide(src, tmp_path / "o.ome.tif", backend, RunOptions(tile=160, progress=False, log=lambda m: None))
    assert len(backend.writers) == writers


def test_writers_option_overrides_the_share(tmp_path: Path) -> None:
    src = write_tiff(tmp_path / "s.tif", textured(200, 200))
    backend = CoresBackend(tiny_backend(tmp_path), 64)
    run_slide(src, tmp_path / "o.ome.tif", backend, RunOptions(tile=160, writers=3, progress=False, log=lambda m: None))
    assert len(backend.writers) == 3
