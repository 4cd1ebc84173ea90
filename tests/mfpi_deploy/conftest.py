"""Engines exported once per test session and shared by the export and backend tests."""
from __future__ import annotations

import pytest

from tests.mfpi_deploy.export.engines import exported


@pytest.fixture(scope="session")
def mfpinet_engine(tmp_path_factory):
    """A grey MFPINet (width 8) exported with the default dynamo exporter, fp32 and fp16."""
    return exported(tmp_path_factory, "mfpinet", fp16=True)


@pytest.fixture(scope="session")
def deepz_engine(tmp_path_factory):
    """An RGB Deep-Z (width 8) exported the same way."""
    return exported(tmp_path_factory, "deepz", fp16=True)
