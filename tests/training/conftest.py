"""Small stacks for the training tests (simulated, written to tmp)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mfpi_deploy.synth import SimConfig, plane_positions_um, simulate_stack, write_stack


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sim_stack() -> np.ndarray:
    return simulate_stack(
        SimConfig(height=192, width=192, seed=3, planes=5, cells_per_mpx=400.0, scattered_fraction=1.0)
    )


@pytest.fixture(scope="session")
def sim_path(tmp_path_factory, sim_stack) -> Path:
    path = tmp_path_factory.mktemp("sim") / "stack.ome.tif"
    write_stack(path, sim_stack, plane_positions_um(5, 2.7), 0.243, tile=64)
    return path
