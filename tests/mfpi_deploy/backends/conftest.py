from __future__ import annotations

import pytest

from tests.mfpi_deploy.export.engines import exported


@pytest.fixture(scope="session")
def mfpinet_engine(tmp_path_factory):
    return exported(tmp_path_factory, "mfpinet", fp16=True)


@pytest.fixture(scope="session")
def deepz_engine(tmp_path_factory):
    return exported(tmp_path_factory, "deepz", fp16=True)
