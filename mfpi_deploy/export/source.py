"""Resolve what `mfpi-export` is given: a checkpoint of ours, an authors' .pth, or `default`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfpi_deploy.checkpoint import default as default_model
from mfpi_deploy.checkpoint.io import (
    CARD_NAME,
    WEIGHTS_NAME,
    Checkpoint,
    checkpoint_paths,
    load_checkpoint,
    save_checkpoint,
)
from mfpi_deploy.checkpoint.reference import import_reference
from mfpi_deploy.errors import CheckpointError
from mfpi_deploy.fileio import file_sha256

REFERENCE_SUFFIXES = (".pth", ".pt")


@dataclass
class Source:
    """A loaded source network and what the manifest says about it."""

    checkpoint: Checkpoint
    kind: str  # checkpoint | reference | default
    path: Path
    sha256: str  # of the file the weights were read from

    def describe(self) -> dict[str, Any]:
        import dataclasses

        return {
            "path": str(self.path),
            "kind": self.kind,
            "sha256": self.sha256,
            "card": dataclasses.asdict(self.checkpoint.card),
        }

    def copy_to(self, folder: Path) -> None:
        """Put the checkpoint into `folder` as model.safetensors + card.json (byte copies if ours)."""
        if self.kind == "reference":
            save_checkpoint(self.checkpoint.model, self.checkpoint.card, folder, overwrite=True)
            return
        paths = checkpoint_paths(self.path)
        shutil.copyfile(paths.weights, folder / WEIGHTS_NAME)
        shutil.copyfile(paths.card, folder / CARD_NAME)


def load_source(source: str | Path) -> Source:
    """Load `source`; every failure is a one-line CheckpointError."""
    if str(source) == default_model.DEFAULT_NAME:
        path = default_model.resolve_checkpoint(source)
        kind = "default"
    else:
        path = Path(source)
        kind = "reference" if path.suffix.lower() in REFERENCE_SUFFIXES else "checkpoint"
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if kind == "reference":
        ckpt = import_reference(path)
        sha = file_sha256(path)
    else:
        ckpt = load_checkpoint(path)
        sha = file_sha256(checkpoint_paths(path).weights)
    return Source(ckpt, kind, path, sha)
