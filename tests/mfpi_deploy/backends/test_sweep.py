"""PlaneSweep: a per-plane Deep-Z engine presented as a stack engine, one pass per plane."""

from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.backends.sweep import PlaneSweep
from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import create_model, stack_dpm_values

PLANES_UM = [-2.0, -1.0, 0.0, 1.0, 2.0]


@pytest.fixture
def deepz_ckpt(tmp_path):
    config = {"in_channels": 4, "width": 8, "scale": 2}
    card = ModelCard("deepz", config, planes_um=PLANES_UM)
    return save_checkpoint(create_model("deepz", **config), card, tmp_path / "deepz")


def test_sweep_stacks_the_passes_of_every_plane(deepz_ckpt):
    tiles = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    with open_backend("torch", deepz_ckpt, log=lambda m: None, per_plane=True) as raw:
        assert raw.spec.needs_dpm and (raw.spec.planes, raw.spec.scale, raw.spec.stride) == (1, 2, 8)
        passes = [raw.run(tiles, np.full(2, v, np.float32))[:, 0] for v in stack_dpm_values(5)]
    with open_backend("torch", deepz_ckpt, log=lambda m: None) as stack:
        assert isinstance(stack, PlaneSweep) and not stack.spec.needs_dpm
        assert stack.spec.output_shape(2, 16, 24) == (2, 5, 32, 48, 3)
        out = stack.run(tiles)
        assert "5 passes per stack" in stack.describe()
        with pytest.raises(MfpiError, match="sets the DPM"):
            stack.run(tiles, np.zeros(2, np.float32))
    assert out.shape == (2, 5, 32, 48, 3)
    np.testing.assert_array_equal(out, np.stack(passes, axis=1))
    assert len({p.tobytes() for p in passes}) == 5  # the DPM changes the output: every plane its own


def test_an_mfpinet_engine_needs_no_sweep(tmp_path):
    config = {"in_channels": 3, "planes": 5, "width": 4}
    card = ModelCard("mfpinet", config, planes_um=PLANES_UM)
    ckpt = save_checkpoint(create_model("mfpinet", **config), card, tmp_path / "m")
    with open_backend("torch", ckpt, log=lambda m: None) as backend:
        assert not isinstance(backend, PlaneSweep)
        with pytest.raises(MfpiError, match="needs no plane sweep"):
            PlaneSweep(backend)
