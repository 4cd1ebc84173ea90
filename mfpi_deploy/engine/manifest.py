"""manifest.json: what an engine folder holds, where it came from, and how to trust it on open.

Every artifact is recorded with its SHA-256; `EngineFolder` checks the hash of each file it
hands out and keeps artifact paths inside the folder, so an engine changed after export, or
a manifest pointing elsewhere, is refused before anything runs. TensorRT engines are valid
only on the GPU model and TensorRT version that built them; the manifest records both.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import file_sha256, write_atomic

MANIFEST_NAME = "manifest.json"
# 2: the network contract in one "engine" block; weights and card hashed
# 3: int8/bf16 variants, artifacts' runtime hints, accuracy gates per runtime
MANIFEST_VERSION = 3
ONNX_NAME = "model.onnx"
ONNX_FP16_NAME = "model.fp16.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
ENGINE_NAME = "model.engine"
TIMING_CACHE_NAME = "timing.cache"
_V1_ENGINE_FIELDS = ("architecture", "channels", "planes", "scale", "stride", "planes_um", "profiles")


class EngineMismatchError(MfpiError):
    """A TensorRT engine built for another GPU or TensorRT version."""


class EngineIntegrityError(MfpiError):
    """An engine folder whose files do not match its manifest."""


@dataclass
class Artifact:
    """One file of the folder: name, SHA-256 and what it computes."""

    file: str
    sha256: str
    precision: str  # fp32 | fp16 | bf16 | int8 ("" for files that compute nothing, e.g. the model card)
    opset: int | None = None
    fp32_nodes: list[str] = field(default_factory=list)  # fp16 and int8 graphs: nodes kept in float32
    hints: dict[str, str] = field(default_factory=dict)  # runtime settings, e.g. bf16: INFERENCE_PRECISION_HINT


@dataclass
class GpuTarget:
    """The device and TensorRT version an engine was built for (it runs on nothing else)."""

    name: str
    compute_capability: str  # "8.6"
    tensorrt: str


@dataclass(frozen=True)
class GateFigure:
    """A variant's accuracy gate: its lowest per-plane PSNR against fp32 (dB) on `runtime`, and the threshold."""

    precision: str
    runtime: str
    min_psnr_db: float
    threshold_db: float | None  # None: not recorded, which fails the gate
    method: str = ""  # how it was measured where that varies (bf16: openvino | emulated)

    @property
    def passed(self) -> bool:
        return self.threshold_db is not None and self.min_psnr_db >= self.threshold_db


@dataclass
class Manifest:
    engine: EngineSpec  # the network contract; precision is each artifact's
    source: dict[str, Any]  # path, kind (checkpoint | reference | default), sha256, card
    artifacts: dict[str, Artifact]  # "onnx", "weights", "card"; optionally "onnx_fp16", "onnx_int8",
    # "onnx_bf16" (model.onnx again, with OpenVINO's bf16 hint), "engine"
    tools: dict[str, str]
    accuracy: dict[str, Any] = field(default_factory=dict)
    gpu: GpuTarget | None = None
    exporter: str = "dynamo"
    workspace_gb: float | None = None
    created: str = ""
    manifest_version: int = MANIFEST_VERSION

    def spec(self, precision: str, *, limited: bool) -> EngineSpec:
        """The spec of one artifact; `limited` keeps the TensorRT profiles' size limits."""
        profiles = self.engine.profiles
        if not limited:  # onnxruntime and torch take any size on the stride grid: keep the hints only
            first = profiles[0]
            profiles = (dataclasses.replace(first, min_tile=None, max_tile=None, max_batch=None),)
        return dataclasses.replace(self.engine, profiles=profiles, precision=precision)

    def gate(self, precision: str, runtime: str) -> GateFigure | None:
        """The `precision` variant's accuracy gate as measured on `runtime` (onnxruntime | openvino) at
        export, or None if it was not (fp16 blocks without "runtimes" were measured with onnxruntime)."""
        block = self.accuracy.get(precision)
        if not isinstance(block, dict):
            return None
        runtimes = block.get("runtimes") or ({"onnxruntime": block} if "min_psnr_db" in block else {})
        figures = runtimes.get(runtime)
        if not isinstance(figures, dict) or "min_psnr_db" not in figures:
            return None
        threshold = block.get("threshold_db", figures.get("threshold_db"))
        return GateFigure(
            precision,
            runtime,
            float(figures["min_psnr_db"]),
            None if threshold is None else float(threshold),
            str(figures.get("method", "")),
        )

    def gate_reason(self, precision: str, runtime: str) -> str | None:
        """Why the `precision` variant may not run on `runtime` (onnxruntime | openvino), or None.

        fp32 is the reference. Other variants need accuracy figures measured on that runtime
        at export (accuracy[precision]["runtimes"][runtime]) at or above the gate's threshold.
        """
        if precision == "fp32":
            return None
        if not isinstance(self.accuracy.get(precision), dict):
            return f"the manifest has no {precision} accuracy figures"
        gate = self.gate(precision, runtime)
        if gate is None:
            return (
                f"its {precision} accuracy gate was not measured on {runtime} (export again with {runtime} installed)"
            )
        if not gate.passed:
            return f"its {precision} accuracy gate did not pass on {runtime} ({gate.min_psnr_db} dB)"
        return None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["engine"] = self.engine.to_dict()
        return json.dumps(data, indent=2) + "\n"

    def write(self, folder: Path) -> Path:
        return write_atomic(Path(folder) / MANIFEST_NAME, self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = MANIFEST_NAME) -> Manifest:
        if not isinstance(data, dict):
            raise MfpiError(f"{where}: not a JSON object")
        version = data.get("manifest_version", 1)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise MfpiError(f"{where}: manifest version {version!r} is newer than this tool ({MANIFEST_VERSION})")
        try:
            data = dict(data)
            if version == 1:  # the engine fields stood at the top level (v2 and v3 add fields only)
                data["engine"] = {k: data.pop(k) for k in _V1_ENGINE_FIELDS}
            engine = EngineSpec.from_dict(data.pop("engine"))
            arts = {k: Artifact(**v) for k, v in data.pop("artifacts").items()}
            gpu = GpuTarget(**data.pop("gpu")) if data.get("gpu") else None
            data.pop("gpu", None)
            return cls(engine=engine, artifacts=arts, gpu=gpu, **{**data, "manifest_version": MANIFEST_VERSION})
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise MfpiError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None
        except MfpiError as exc:  # a field out of range (EngineSpec's checks)
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


def is_engine_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


class EngineFolder:
    """An engine folder opened to run: its manifest, and its files checked as they are handed out."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder)
        self.manifest = Manifest.read(self.path)
        for art in self.manifest.artifacts.values():  # refuse a manifest pointing outside, whatever runs
            self._confined(art)

    def has(self, key: str) -> bool:
        return key in self.manifest.artifacts

    def _confined(self, art: Artifact) -> Path:
        if not isinstance(art.file, str) or Path(art.file).name != art.file or art.file in ("", ".", ".."):
            raise EngineIntegrityError(
                f"{self.path / MANIFEST_NAME}: artifact path {art.file!r} leaves the "
                f"engine folder; only plain file names inside it are allowed"
            )
        return self.path / art.file

    def verify_all(self) -> None:
        """Check every file the manifest lists (a run refuses a folder changed after export)."""
        for key in self.manifest.artifacts:
            self.artifact(key)

    def artifact(self, key: str, *, verify: bool = True) -> Path:
        """The path of artifact `key`, inside the folder and with the SHA-256 the manifest records."""
        art = self.manifest.artifacts.get(key)
        if art is None:
            raise MfpiError(f"{self.path}: the manifest lists no {key!r} artifact")
        path = self._confined(art)
        if not path.is_file():
            raise EngineIntegrityError(f"{path}: missing (the manifest lists it); export the engine again")
        if verify and file_sha256(path) != art.sha256:
            raise EngineIntegrityError(
                f"{path}: its SHA-256 differs from the manifest (changed or damaged "
                f"after export); export the engine again"
            )
        return path

    def spec(self, key: str, *, limited: bool) -> EngineSpec:
        return self.manifest.spec(self.manifest.artifacts[key].precision, limited=limited)


def check_engine_target(built: GpuTarget | None, here: GpuTarget, *, folder: str | Path = "") -> None:
    """Refuse an engine built for another GPU model, compute capability or TensorRT version."""
    where = f"{folder}: " if folder else ""
    if built is None:
        raise EngineMismatchError(f"{where}manifest does not record the GPU the engine was built for; rebuild it")
    problems = []
    if built.tensorrt != here.tensorrt:
        problems.append(f"TensorRT {built.tensorrt}, this machine has {here.tensorrt}")
    if built.compute_capability != here.compute_capability or built.name != here.name:
        problems.append(
            f"GPU {built.name} (sm {built.compute_capability}), this machine has "
            f"{here.name} (sm {here.compute_capability})"
        )
    if problems:
        raise EngineMismatchError(
            f"{where}engine was built for "
            + "; ".join(problems)
            + f" - rebuild it with: mfpi-export --rebuild {folder or 'FOLDER'}"
        )
