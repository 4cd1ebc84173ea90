"""manifest.json: what an engine folder holds, where it came from and how accurate it is.

Engines are only valid on the GPU model and TensorRT version they were built with; the
manifest records both so a mismatch is refused before TensorRT tries to deserialise.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfpi_deploy.backends.base import EngineSpec, TileProfile
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import write_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
ONNX_NAME = "model.onnx"
ONNX_FP16_NAME = "model.fp16.onnx"
ENGINE_NAME = "model.engine"
TIMING_CACHE_NAME = "timing.cache"


class EngineMismatchError(MfpiError):
    """A TensorRT engine built for another GPU or TensorRT version."""


@dataclass
class Artifact:
    """One file of the folder: name, SHA-256 and what it computes."""

    file: str
    sha256: str
    precision: str  # fp32 | fp16
    opset: int | None = None
    fp32_nodes: list[str] = field(default_factory=list)  # fp16 graphs: nodes kept in float32


@dataclass
class GpuTarget:
    """The device and TensorRT version an engine was built for (it runs on nothing else)."""

    name: str
    compute_capability: str  # "8.6"
    tensorrt: str


@dataclass
class Manifest:
    architecture: str
    channels: int
    planes: int
    scale: int
    stride: int
    planes_um: list[float]
    source: dict[str, Any]  # path, kind (checkpoint | reference | default), sha256, card
    artifacts: dict[str, Artifact]  # "onnx", optionally "onnx_fp16", "engine"
    profiles: list[dict[str, Any]]  # TileProfile fields (TensorRT optimisation profiles)
    tools: dict[str, str]
    accuracy: dict[str, Any] = field(default_factory=dict)
    gpu: GpuTarget | None = None
    exporter: str = "dynamo"
    workspace_gb: float | None = None
    created: str = ""
    manifest_version: int = MANIFEST_VERSION

    def tile_profiles(self) -> tuple[TileProfile, ...]:
        return tuple(TileProfile(**p) for p in self.profiles)

    def spec(self, precision: str, *, limited: bool) -> EngineSpec:
        """The spec of one artifact; `limited` applies the TensorRT profiles' size limits."""
        profiles = self.tile_profiles()
        if not limited:  # onnxruntime takes any size on the stride grid
            first = profiles[0] if profiles else TileProfile()
            profiles = (TileProfile(opt_tile=first.opt_tile, opt_batch=first.opt_batch),)
        return EngineSpec(
            architecture=self.architecture, channels=self.channels, planes=self.planes, scale=self.scale,
            stride=self.stride, planes_um=tuple(self.planes_um), profiles=profiles, precision=precision,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        return write_atomic(path, self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = MANIFEST_NAME) -> Manifest:
        if not isinstance(data, dict):
            raise MfpiError(f"{where}: not a JSON object")
        version = data.get("manifest_version", MANIFEST_VERSION)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise MfpiError(f"{where}: manifest version {version!r} is newer than this tool ({MANIFEST_VERSION})")
        try:
            arts = {k: Artifact(**v) for k, v in data["artifacts"].items()}
            gpu = GpuTarget(**data["gpu"]) if data.get("gpu") else None
            return cls(**{**data, "artifacts": arts, "gpu": gpu})
        except (KeyError, TypeError, AttributeError) as exc:
            raise MfpiError(f"{where}: malformed manifest ({exc})") from None

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        path = Path(folder) / MANIFEST_NAME
        if not Path(folder).is_dir():
            raise MfpiError(f"{folder}: no such engine folder")
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise MfpiError(f"{folder}: not an engine folder (no {MANIFEST_NAME}; make one with mfpi-export)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MfpiError(f"{path}: unreadable manifest ({exc})") from None
        return cls.from_dict(data, where=str(path))


def check_engine_target(built: GpuTarget | None, here: GpuTarget, *, folder: str | Path = "") -> None:
    """Refuse an engine built for another GPU model, compute capability or TensorRT version."""
    where = f"{folder}: " if folder else ""
    if built is None:
        raise EngineMismatchError(f"{where}manifest does not record the GPU the engine was built for; rebuild it")
    problems = []
    if built.tensorrt != here.tensorrt:
        problems.append(f"TensorRT {built.tensorrt}, this machine has {here.tensorrt}")
    if built.compute_capability != here.compute_capability or built.name != here.name:
        problems.append(f"GPU {built.name} (sm {built.compute_capability}), this machine has "
                        f"{here.name} (sm {here.compute_capability})")
    if problems:
        raise EngineMismatchError(
            f"{where}engine was built for " + "; ".join(problems)
            + " - rebuild it (mfpi-export --rebuild FOLDER, or mfpi-run --rebuild-engine)"
        )
