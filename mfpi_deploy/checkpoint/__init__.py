"""Checkpoint format (safetensors + JSON model card) and import of the authors' .pth files.

The model card imports without torch; reading and writing weights (`io`, `reference`) load torch
when first named (PEP 562), so an engine folder's card is read without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from mfpi_deploy.checkpoint.card import PAPER_PLANES_UM, ModelCard, Provenance

_LAZY = {
    "Checkpoint": "io",
    "load_checkpoint": "io",
    "save_checkpoint": "io",
    "import_reference": "reference",
    "read_state_dict": "reference",
}

__all__ = [
    "ModelCard",
    "Provenance",
    "PAPER_PLANES_UM",
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "import_reference",
    "read_state_dict",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
