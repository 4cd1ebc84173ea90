"""Open a backend by kind for an engine folder or a checkpoint; `auto` picks the fastest available.

`unavailable_reason` is the one availability probe (commands and mfpi-bench use it), and
`open_backend` the one way to open an engine: it checks the folder's files and runs one
smallest tile to check that the graph gives what the manifest says.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.checkpoint.io import load_checkpoint
from mfpi_deploy.engine.manifest import ENGINE_NAME, EngineFolder, is_engine_folder
from mfpi_deploy.errors import MfpiError

AUTO_ORDER = (BackendKind.TRT, BackendKind.ORT_CUDA, BackendKind.ORT_CPU)


def _missing(*modules: str) -> str | None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


def runtime_missing(kind: BackendKind) -> str | None:
    """Why this machine cannot run `kind` at all (a runtime or device is missing), or None."""
    if kind is BackendKind.TORCH:
        return None
    if kind is BackendKind.TRT:
        missing = _missing("tensorrt", "pycuda")
        return f"{missing} (pip install '.[trt]')" if missing else None
    missing = _missing("onnxruntime")
    if missing or kind is BackendKind.ORT_CPU:
        return missing
    from mfpi_deploy.backends.ort_backend import CUDA_EP, available_providers

    if CUDA_EP not in available_providers():
        return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu on an NVIDIA machine)"
    return None


def unavailable_reason(kind: BackendKind, source: str | Path | None = None) -> str | None:
    """Why `kind` cannot run `source` on this machine (None: it can). Cheap checks only.

    Without a source, only the runtime is checked (what mfpi-bench needs before exporting).
    """
    reason = runtime_missing(kind)
    if reason or source is None or kind is BackendKind.TORCH:
        return reason
    folder = Path(source)
    if not is_engine_folder(folder):
        return f"{folder} is not an engine folder (no manifest.json; export it with mfpi-export)"
    manifest = EngineFolder(folder).manifest
    if kind is BackendKind.TRT:
        if "engine" not in manifest.artifacts:
            return f"no {ENGINE_NAME} in folder (export with --trt)"
        from mfpi_deploy.engine.cuda import engine_mismatch

        return engine_mismatch(folder)
    if "onnx" not in manifest.artifacts:
        return "no ONNX graph in folder"
    return None


def choose_backend(source: str | Path) -> tuple[BackendKind, list[str]]:
    """The first usable kind in AUTO_ORDER and the reasons the ones before it were skipped."""
    skipped: list[str] = []
    for kind in AUTO_ORDER:
        reason = unavailable_reason(kind, source)
        if reason is None:
            return kind, skipped
        skipped.append(f"{kind.value}: {reason}")
    raise MfpiError(f"no backend can run {source}: " + "; ".join(skipped))


def open_backend(kind: BackendKind | str, source: str | Path, *, threads: int | None = None,
                 log: Callable[[str], None] = print, fp16: bool | None = None, device: str | None = None) -> Backend:
    """Load `source` (an exported engine folder, or a checkpoint for `torch`) on backend `kind`.

    `auto` tries TensorRT, then onnxruntime CUDA, then onnxruntime CPU, and logs which it
    picked and why the others were skipped. `threads` sets CPU threads (ort-cpu, torch).
    `fp16` picks the onnxruntime graph: None runs model.fp16.onnx on ort-cuda when the
    folder has one and model.onnx otherwise (float16 is slow on CPUs). `device` is torch's
    (default: cpu).
    """
    kind = BackendKind.parse(kind)
    if is_engine_folder(source):  # every file as exported, whichever one this backend runs
        EngineFolder(source).verify_all()
    if kind is BackendKind.AUTO:
        if not is_engine_folder(source):
            log(f"backend: torch ({source} is a checkpoint, not an engine folder)")
            kind = BackendKind.TORCH
        else:
            kind, skipped = choose_backend(source)
            why = f" (skipped {'; '.join(skipped)})" if skipped else ""
            log(f"backend: {kind.value}{why}")
    else:
        reason = unavailable_reason(kind, source)
        if reason is not None:
            raise MfpiError(f"backend {kind.value} cannot run {source}: {reason}")
    backend = _open(kind, Path(source), threads=threads, fp16=fp16, device=device)
    try:
        backend.check_graph()
    except BaseException:
        backend.close()
        raise
    return backend


def _open(kind: BackendKind, source: Path, *, threads: int | None, fp16: bool | None, device: str | None) -> Backend:
    if kind is BackendKind.TORCH:
        from mfpi_deploy.backends.torch_backend import TorchBackend

        if not is_engine_folder(source):
            return TorchBackend(load_checkpoint(source), threads=threads, device=device or "cpu")
        folder = EngineFolder(source)
        if folder.has("weights"):  # exports before manifest v2 did not hash the weights
            folder.artifact("weights")
        # same spec (tile/batch hints) as the folder's other backends
        return TorchBackend(load_checkpoint(source), threads=threads, device=device or "cpu",
                            spec=folder.spec("onnx", limited=False))
    if kind is BackendKind.TRT:
        from mfpi_deploy.backends.trt_backend import TrtBackend

        return TrtBackend(source)
    from mfpi_deploy.backends.ort_backend import OrtBackend

    if fp16 is None:
        fp16 = kind is BackendKind.ORT_CUDA and EngineFolder(source).has("onnx_fp16")
    return OrtBackend(source, kind=kind, threads=threads, fp16=fp16)
