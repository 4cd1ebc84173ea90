"""Deep-Z as a stack engine: one pass per plane with that plane's DPM value, the planes stacked,
so the tiled-inference path (mfpi-run, mfpi-eval, napari) takes a Deep-Z engine as it takes MFPINet."""

from __future__ import annotations

import dataclasses

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models.configs import stack_dpm_values


class PlaneSweep(Backend):
    """uint8 (N, H, W, C) -> (N, planes, sH, sW, C) from a per-plane engine, planes = len(planes_um)."""

    def __init__(self, inner: Backend) -> None:
        if not inner.spec.needs_dpm:
            raise MfpiError(f"{inner.describe()} gives whole stacks already; it needs no plane sweep")
        self.inner = inner
        self.kind = inner.kind
        self.values = np.asarray(stack_dpm_values(len(inner.spec.planes_um)), np.float32)
        self.spec = dataclasses.replace(inner.spec, planes=len(self.values))

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        if dpm is not None:
            raise MfpiError("a plane sweep sets the DPM of every pass itself")
        # run_many: a GPU backend keeps several passes in flight (copies overlap compute)
        passes = self.inner.run_many((tiles, np.full(len(tiles), v, np.float32)) for v in self.values)
        return np.stack([out[:, 0] for out in passes], axis=1)

    def host_cores(self) -> int:
        return self.inner.host_cores()

    def device_type(self) -> str:
        return self.inner.device_type()

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return f"{self.inner.describe()}, {len(self.values)} passes per stack"
