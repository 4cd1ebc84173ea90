"""Where exported engines are cached ($MFPI_CACHE_DIR), and the key that names a cached export."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mfpi_deploy.engine.manifest import MANIFEST_VERSION

CACHE_ENV = "MFPI_CACHE_DIR"


def cache_root() -> Path:
    """$MFPI_CACHE_DIR, else ~/.cache/mfpi-deploy (XDG_CACHE_HOME respected)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mfpi-deploy"


def cache_key(weights_sha256: str, versions: dict[str, str], opset: int, variants: tuple[str, ...] = ()) -> str:
    """Key of a cached export: the weights, every tool version that shapes the artifact, and the
    variants beyond fp32 it was asked for (none: the key of an fp32-only export, as before)."""
    fields: dict = {"weights": weights_sha256, "tools": versions, "opset": opset, "manifest": MANIFEST_VERSION}
    if variants:
        fields["variants"] = sorted(variants)
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
