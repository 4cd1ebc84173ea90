"""Engines exported once per test session and shared by the export and backend tests."""

from __future__ import annotations

import pytest

from tests.mfpi_deploy.export.engines import exported


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    """Engine caches, OpenVINO's compiled models and auto's probe timings go to the session's tmp, not ~/.cache."""
    monkeypatch.setenv("MFPI_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "mfpi-cache"))


@pytest.fixture(scope="session")
def mfpinet_engine(tmp_path_factory):
    """A grey MFPINet (width 8) exported with the default dynamo exporter: fp32, fp16, int8 and bf16."""
    return exported(tmp_path_factory, "mfpinet", fp16=True, int8=True, bf16=True)


@pytest.fixture(scope="session")
def deepz_engine(tmp_path_factory):
    """An RGB Deep-Z (width 8) exported the same way."""
    return exported(tmp_path_factory, "deepz", fp16=True)
