from __future__ import annotations

import onnxruntime
import pytest
import torch

from tests.mfpi_deploy.export.engines import exported


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mfpinet_engine(tmp_path_factory):
    """A grey MFPINet (width 8) exported with the default dynamo exporter, fp32 and fp16."""
    return exported(tmp_path_factory, "mfpinet", fp16=True)


@pytest.fixture(scope="session")
def deepz_engine(tmp_path_factory):
    """An RGB Deep-Z (width 8) exported the same way."""
    return exported(tmp_path_factory, "deepz", fp16=True)


def ort_session(path):
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
