"""Open a backend by kind for an engine folder or a checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.checkpoint.io import load_checkpoint
from mfpi_deploy.errors import MfpiError


def open_backend(kind: BackendKind | str, source: str | Path, *, threads: int | None = None,
                 log: Callable[[str], None] = print) -> Backend:
    """Load `source` (an exported engine folder, or a checkpoint for `torch`) on backend `kind`."""
    kind = BackendKind.parse(kind)
    if kind is BackendKind.TORCH:
        from mfpi_deploy.backends.torch_backend import TorchBackend

        return TorchBackend(load_checkpoint(source), threads=threads)
    raise MfpiError(f"backend {kind.value} is not available in this build")
