"""Checkpoint format (safetensors + JSON model card) and import of the authors' .pth files."""

from __future__ import annotations

from mfpi_deploy.checkpoint.card import PAPER_PLANES_UM, ModelCard, Provenance
from mfpi_deploy.checkpoint.io import Checkpoint, file_sha256, load_checkpoint, save_checkpoint
from mfpi_deploy.checkpoint.reference import import_reference, read_state_dict

__all__ = [
    "ModelCard",
    "Provenance",
    "PAPER_PLANES_UM",
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "file_sha256",
    "import_reference",
    "read_state_dict",
]
