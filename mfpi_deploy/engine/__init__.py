"""The engine-folder contract, shared by what builds engines (export) and what runs them (backends).

`spec` says what an engine computes, `manifest` what a folder holds and how to trust it,
`profiles` the shape arithmetic of TensorRT profiles, `cache` where exports are kept,
`cuda` the lazy TensorRT/pycuda imports and the GPU an engine is tied to.
"""

from __future__ import annotations

from mfpi_deploy.engine.manifest import Artifact, EngineFolder, GpuTarget, Manifest
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.tiling import TileProfile

__all__ = ["Artifact", "EngineFolder", "EngineSpec", "GpuTarget", "Manifest", "TileProfile"]
