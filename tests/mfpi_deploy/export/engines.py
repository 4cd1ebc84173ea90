"""Tiny checkpoints and exported engine folders shared by the export and backend tests.

Exports are cached per session (a dynamo export takes ~15 s on 2 cores), keyed by what
was asked for.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
from mfpi_deploy.export.api import ExportOptions, export_model
from mfpi_deploy.models import create_model

CONFIGS = {
    "mfpinet": {"in_channels": 1, "width": 8},  # grey, like the real data
    "deepz": {"in_channels": 4, "width": 8, "scale": 2},  # RGB + DPM, on the low-resolution input like MFPINet
}
_CACHE: dict[tuple, Path] = {}


def tiny_checkpoint(folder: Path, arch: str = "mfpinet", seed: int = 0, **config) -> Path:
    torch.manual_seed(seed)
    cfg = {**CONFIGS[arch], **config}
    save_checkpoint(create_model(arch, **cfg), ModelCard(architecture=arch, config=cfg), folder)
    return folder


def export_options(**kw) -> ExportOptions:
    base = dict(tiles=(64,), batches=(1, 2), threads=1, gate_tile=64, gate_count=2)
    return ExportOptions(**{**base, **kw})


def exported(tmp_path_factory, arch: str = "mfpinet", **kw) -> Path:
    key = (arch, tuple(sorted(kw.items())))
    if key not in _CACHE:
        root = tmp_path_factory.mktemp(f"engine-{arch}")
        ckpt = tiny_checkpoint(root / "ckpt", arch)
        _CACHE[key] = export_model(ckpt, root / "engine", export_options(**kw), log=lambda _: None)
    return _CACHE[key]
