"""`mfpi-run --make-sample` streams: its memory follows the simulation window, not the slide.

Measured by hand (benchmarks/run/results/sample_memory.md): --sample-size 4096 peaks at about
0.7 GB resident (the whole-slide simulator needed 6.0 GB at 1024 and was killed at 20 GB at
2048). Here, with small windows so it runs in seconds: 4x the pixels must cost less than 2x
the peak Python/numpy allocation (the whole-slide simulator's grows 3x from 64 to 128).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.run import sample


def _peak(path: Path, size: int) -> int:
    tracemalloc.start()
    try:
        sample.write_sample(path, size)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_sample_memory_grows_sub_linearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample, "BAND", 32)  # 4 and 16 windows
    small, large = _peak(tmp_path / "s.tif", 64), _peak(tmp_path / "l.tif", 128)
    assert large < 2 * small, (small, large)
    image = tifffile.imread(tmp_path / "l.tif")
    assert image.shape == (128, 128, 3) and 150 < image.mean() < 250  # a bright slide with stained cells
    assert image.min() < 150


def test_windows_join_without_seams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same slide made in windows of 32 and of 96 pixels: equal up to float rounding."""
    monkeypatch.setattr(sample, "BAND", 32)
    a = np.concatenate(list(sample.sample_bands(96, seed=3)))
    monkeypatch.setattr(sample, "BAND", 96)
    b = np.concatenate(list(sample.sample_bands(96, seed=3)))
    diff = np.abs(a.astype(int) - b)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
