"""Inference backends behind one interface (see base.Backend); `select.open_backend` opens one."""

from __future__ import annotations

from mfpi_deploy.backends.base import Backend, BackendKind

__all__ = ["Backend", "BackendKind"]
