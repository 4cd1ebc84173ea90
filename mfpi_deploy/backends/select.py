"""Open a backend by kind for an engine folder or a checkpoint; `auto` picks the fastest available."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.checkpoint.io import load_checkpoint
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.manifest import ENGINE_NAME, MANIFEST_NAME, ONNX_NAME

AUTO_ORDER = (BackendKind.TRT, BackendKind.ORT_CUDA, BackendKind.ORT_CPU)


def is_engine_folder(source: str | Path) -> bool:
    return (Path(source) / MANIFEST_NAME).is_file()


def unavailable_reason(kind: BackendKind, source: str | Path) -> str | None:
    """Why `kind` cannot run `source` on this machine, or None if it can (cheap checks only)."""
    folder = Path(source)
    if kind is BackendKind.TORCH:
        return None
    if not is_engine_folder(folder):
        return f"{folder} is not an engine folder (no {MANIFEST_NAME}; export it with mfpi-export)"
    if kind is BackendKind.TRT:
        for module in ("tensorrt", "pycuda"):
            if importlib.util.find_spec(module) is None:
                return f"{module} not installed"
        if not (folder / ENGINE_NAME).is_file():
            return f"no {ENGINE_NAME} in folder (export with --trt)"
        from mfpi_deploy.backends.trt_backend import engine_mismatch

        return engine_mismatch(folder)
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime not installed"
    if not (folder / ONNX_NAME).is_file():
        return f"no {ONNX_NAME} in folder"
    if kind is BackendKind.ORT_CUDA:
        from mfpi_deploy.backends.ort_backend import CUDA_EP, available_providers

        if CUDA_EP not in available_providers():
            return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu on an NVIDIA machine)"
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
                 log: Callable[[str], None] = print, fp16: bool | None = None) -> Backend:
    """Load `source` (an exported engine folder, or a checkpoint for `torch`) on backend `kind`.

    `auto` tries TensorRT, then onnxruntime CUDA, then onnxruntime CPU, and logs which it
    picked and why the others were skipped. `threads` sets CPU threads (ort-cpu, torch).
    `fp16` picks the onnxruntime graph: None runs model.fp16.onnx on ort-cuda when the
    folder has one and model.onnx otherwise (float16 is slow on CPUs).
    """
    kind = BackendKind.parse(kind)
    if kind is BackendKind.AUTO:
        if not is_engine_folder(source):
            log(f"backend: torch ({source} is a checkpoint, not an engine folder)")
            kind = BackendKind.TORCH
        else:
            kind, skipped = choose_backend(source)
            why = f" (skipped {'; '.join(skipped)})" if skipped else ""
            log(f"backend: {kind.value}{why}")
    elif kind is not BackendKind.TORCH:
        reason = unavailable_reason(kind, source)
        if reason is not None:
            raise MfpiError(f"backend {kind.value} cannot run {source}: {reason}")
    if kind is BackendKind.TORCH:
        from mfpi_deploy.backends.torch_backend import TorchBackend

        backend = TorchBackend(load_checkpoint(source), threads=threads)
        if is_engine_folder(source):  # same spec (tile/batch hints) as the folder's other backends
            from mfpi_deploy.export.manifest import Manifest

            backend.spec = Manifest.read(source).spec("fp32", limited=False)
        return backend
    if kind is BackendKind.TRT:
        from mfpi_deploy.backends.trt_backend import TrtBackend

        return TrtBackend(source)
    from mfpi_deploy.backends.ort_backend import OrtBackend
    from mfpi_deploy.export.manifest import Manifest

    if fp16 is None:
        fp16 = kind is BackendKind.ORT_CUDA and "onnx_fp16" in Manifest.read(source).artifacts
    return OrtBackend(source, kind=kind, threads=threads, fp16=fp16)
