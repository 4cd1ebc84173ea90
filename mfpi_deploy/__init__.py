"""mfpi-deploy: MFPINet from paper to production (export, whole-slide inference, benchmarks)."""

from __future__ import annotations

__version__ = "0.1.1"
