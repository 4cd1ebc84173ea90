"""Shared fixtures: paths to ../shared, small seeded tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
REAL_DATA = SHARED / "data" / "real"


@pytest.fixture
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference facts not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture
def real_stack_path() -> Path:
    path = REAL_DATA / "isl_kevan_0_8_A4_phasecontrast_13z.tif"
    if not path.is_file():
        pytest.skip(f"real data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


REAL_CUDA_AVAILABLE = torch.cuda.is_available


@pytest.fixture(autouse=True, scope="session")
def _torch_on_the_cpu():
    """Tests compare torch's output with the CPU runtimes' bit for bit, so torch computes on the CPU
    in them (unless told) even where PyTorch sees a GPU; gpu-marked tests see the real GPU."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        yield


@pytest.fixture(autouse=True)
def _gpu_tests_see_the_gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("gpu") is not None:
        monkeypatch.setattr(torch.cuda, "is_available", REAL_CUDA_AVAILABLE)
