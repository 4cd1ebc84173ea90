"""Versions of the tools that shape an exported artifact (recorded in the manifest, part of cache keys),
read from the installed distributions' metadata so that asking does not import torch or onnx."""

from __future__ import annotations

from importlib import metadata

DEFAULT_OPSET = 20  # ONNX opset: current, and parsed by TensorRT 10/11 and onnxruntime >= 1.17


def _version(*distributions: str) -> str:
    """The installed version of the first of `distributions` found (onnxruntime or onnxruntime-gpu)."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def tool_versions(*, tensorrt: bool = False, openvino: bool = False) -> dict[str, str]:
    import mfpi_deploy

    versions = {
        "mfpi_deploy": mfpi_deploy.__version__,
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
        "numpy": _version("numpy"),
    }
    if tensorrt:
        from mfpi_deploy.engine.cuda import tensorrt_version

        versions["tensorrt"] = tensorrt_version()
    if openvino:
        import openvino as ov

        versions["openvino"] = str(ov.__version__)
    return versions
