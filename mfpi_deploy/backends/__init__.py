"""Inference backends behind one interface (see base.Backend)."""
from __future__ import annotations

from mfpi_deploy.backends.base import Backend, BackendKind, EngineSpec, TileProfile

__all__ = ["Backend", "BackendKind", "EngineSpec", "TileProfile"]
