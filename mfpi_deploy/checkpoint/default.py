"""The bundled default model: the checkpoint `mfpi-run` and `mfpi-export default` use."""

from __future__ import annotations

from pathlib import Path

from mfpi_deploy.checkpoint.card import WEIGHTS_NAME
from mfpi_deploy.errors import CheckpointError

DEFAULT_NAME = "default"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_model"


def resolve_checkpoint(source: str | Path) -> Path:
    """`default` -> the bundled model's folder; any other value is taken as a path."""
    if str(source) == DEFAULT_NAME:
        if not (DEFAULT_MODEL_DIR / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"the bundled default model is missing from {DEFAULT_MODEL_DIR}")
        return DEFAULT_MODEL_DIR
    return Path(source)
