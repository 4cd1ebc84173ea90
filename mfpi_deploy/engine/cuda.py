"""TensorRT and pycuda, imported lazily with a one-line error, and the GPU an engine is tied to."""

from __future__ import annotations

from pathlib import Path

from mfpi_deploy.engine.manifest import GpuTarget, Manifest, check_engine_target
from mfpi_deploy.errors import MfpiError


def import_tensorrt():
    """The tensorrt module, or a one-line MfpiError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MfpiError(
            "TensorRT is not installed (pip install 'mfpi-deploy[trt]' on a machine with an "
            "NVIDIA GPU); export without --trt to get ONNX only"
        ) from None
    return trt


def import_pycuda():
    """pycuda.driver, initialised, or a one-line MfpiError (not installed, no driver, no device)."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise MfpiError("pycuda is not installed (pip install 'mfpi-deploy[trt]')") from None
    try:
        cuda.init()
    except cuda.Error as exc:
        raise MfpiError(f"CUDA is not usable on this machine ({exc})") from None
    if cuda.Device.count() == 0:
        raise MfpiError("no CUDA device found")
    return cuda


def tensorrt_version() -> str:
    return str(import_tensorrt().__version__)


def current_target(device: int = 0) -> GpuTarget:
    """GPU name, compute capability and TensorRT version of this machine."""
    cuda = import_pycuda()
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    return GpuTarget(name=str(dev.name()), compute_capability=f"{major}.{minor}", tensorrt=tensorrt_version())


def engine_mismatch(folder: str | Path, device: int = 0) -> str | None:
    """Why the folder's TensorRT engine cannot run here (other GPU / TensorRT version), or None."""
    try:
        check_engine_target(Manifest.read(folder).gpu, current_target(device), folder=folder)
    except MfpiError as exc:
        return str(exc)
    return None
