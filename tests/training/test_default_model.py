from __future__ import annotations

import numpy as np
import torch

from mfpi_deploy.checkpoint import PAPER_PLANES_UM, load_checkpoint
from mfpi_deploy.checkpoint.default import DEFAULT_MODEL_DIR, resolve_checkpoint
from mfpi_deploy.fileio import file_sha256


def test_bundled_demo_model_loads_and_is_documented():
    path = resolve_checkpoint("default")
    weights = path / "model.safetensors"
    assert weights.stat().st_size < 15e6
    ckpt = load_checkpoint(path)
    card = ckpt.card
    assert card.architecture == "mfpinet" and card.config == {
        "in_channels": 3,
        "planes": 11,
        "width": 32,
        "residual": True,
    }
    assert card.planes_um == list(PAPER_PLANES_UM) and card.input_pixel_size_um == 0.486
    assert "--width 32" in card.provenance.command and card.provenance.git_commit
    readme = (DEFAULT_MODEL_DIR / "README.md").read_text()
    assert card.provenance.command.split(" --out ")[0].split("train ", 1)[1][:60] in readme.replace(" \\\n  ", " ")
    assert file_sha256(weights) in readme
    with torch.no_grad():
        out = ckpt.model(torch.full((1, 3, 32, 32), 0.9))
    assert out.shape == (1, 33, 64, 64) and np.isfinite(out.numpy()).all()
