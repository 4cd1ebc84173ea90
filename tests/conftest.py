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
