"""Versions of the tools that shape an exported artifact (recorded in the manifest, part of cache keys)."""

from __future__ import annotations


def tool_versions(*, tensorrt: bool = False, openvino: bool = False) -> dict[str, str]:
    import numpy as np
    import onnx
    import onnxruntime
    import onnxscript
    import torch

    import mfpi_deploy

    versions = {
        "mfpi_deploy": mfpi_deploy.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }
    if tensorrt:
        from mfpi_deploy.engine.cuda import tensorrt_version

        versions["tensorrt"] = tensorrt_version()
    if openvino:
        import openvino as ov

        versions["openvino"] = str(ov.__version__)
    return versions
