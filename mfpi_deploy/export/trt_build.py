"""Build a TensorRT engine from an engine folder's ONNX graph (TensorRT 10/11 Python API).

Networks are strongly typed (TensorRT 11 has no FP16 builder flag): the precision is the
ONNX graph's, so FP16 engines come from model.fp16.onnx. One optimisation profile per tile
size; the timing cache is kept beside the engine and reused by rebuilds. TensorRT and
pycuda are imported lazily (engine.cuda); everything that is arithmetic lives in engine.profiles.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mfpi_deploy.engine.cuda import current_target, import_pycuda, import_tensorrt
from mfpi_deploy.engine.manifest import (
    ENGINE_NAME,
    ONNX_FP16_NAME,
    ONNX_NAME,
    TIMING_CACHE_NAME,
    Artifact,
    GpuTarget,
    Manifest,
)
from mfpi_deploy.engine.profiles import profile_shapes
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.versions import tool_versions
from mfpi_deploy.fileio import file_sha256, write_atomic
from mfpi_deploy.tiling import TileProfile

Log = Callable[[str], None]


def workspace_bytes(workspace_gb: float) -> int:
    if workspace_gb <= 0:
        raise MfpiError(f"workspace must be positive, got {workspace_gb} GB")
    return int(workspace_gb * (1 << 30))


def build_engine(
    onnx_path: Path,
    folder: Path,
    spec: EngineSpec,
    profiles: tuple[TileProfile, ...],
    *,
    workspace_gb: float = 4.0,
    device: int = 0,
    log: Log = print,
) -> GpuTarget:
    """Write folder/model.engine (and timing.cache) built from `onnx_path`; returns the build target."""
    trt = import_tensorrt()
    target = current_target(device)
    cuda = import_pycuda()
    ctx = cuda.Device(device).retain_primary_context()
    ctx.push()
    try:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise MfpiError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes(workspace_gb))
        names = tuple(network.get_input(i).name for i in range(network.num_inputs))
        for p in profiles:
            profile = builder.create_optimization_profile()
            for shapes in profile_shapes(spec, p, names):
                profile.set_shape(shapes.name, shapes.min, shapes.opt, shapes.max)
            config.add_optimization_profile(profile)
        cache_path = folder / TIMING_CACHE_NAME
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log("timing cache does not match this GPU/TensorRT; starting a fresh one")
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        log(
            f"building TensorRT {target.tensorrt} engine for {target.name} (sm {target.compute_capability}), "
            f"{len(profiles)} profile(s), workspace {workspace_gb} GB"
        )
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise MfpiError("TensorRT failed to build the engine (see the TensorRT messages above)")
        write_atomic(folder / ENGINE_NAME, bytes(plan))
        write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    finally:
        ctx.pop()
    return target


def rebuild_engine_in_place(
    folder: Path, *, workspace_gb: float | None = None, device: int = 0, log: Log = print
) -> Path:
    """Rebuild `folder`'s engine for this machine and update its manifest (engine written atomically)."""
    manifest = Manifest.read(folder)
    fp16 = "onnx_fp16" in manifest.artifacts and (
        manifest.artifacts.get("engine") is None or manifest.artifacts["engine"].precision == "fp16"
    )
    onnx_name = ONNX_FP16_NAME if fp16 else ONNX_NAME
    if not (folder / onnx_name).is_file():
        raise MfpiError(f"{folder}: {onnx_name} is missing, cannot rebuild the engine")
    spec = manifest.spec("fp16" if fp16 else "fp32", limited=True)
    ws = workspace_gb or manifest.workspace_gb or 4.0
    target = build_engine(
        folder / onnx_name, folder, spec, manifest.engine.profiles, workspace_gb=ws, device=device, log=log
    )
    manifest.artifacts["engine"] = Artifact(
        ENGINE_NAME,
        file_sha256(folder / ENGINE_NAME),
        "fp16" if fp16 else "fp32",
        manifest.artifacts["onnx_fp16" if fp16 else "onnx"].opset,
    )
    manifest.gpu = target
    manifest.workspace_gb = ws
    manifest.tools = {**manifest.tools, **tool_versions(tensorrt=True)}
    manifest.accuracy.pop("engine", None)  # the old engine's figures no longer apply
    manifest.write(folder)
    log(f"rebuilt {folder / ENGINE_NAME}")
    return folder
