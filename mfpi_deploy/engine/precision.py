"""Numeric precisions an engine folder can hold, and which manifest artifact each one runs.

One name per variant everywhere (`mfpi-export --int8`, `mfpi-run --precision int8`, the
manifest's artifact keys and accuracy blocks), so a backend finds a variant without guessing.
"""

from __future__ import annotations

import importlib.util

from mfpi_deploy.choices import Choice


class Precision(Choice):
    """The arithmetic an engine variant computes in (uint8 I/O is the same for all)."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"  # model.onnx run by OpenVINO with INFERENCE_PRECISION_HINT bf16
    INT8 = "int8"  # model.int8.onnx: QDQ static quantization of the convolutions


ARTIFACT_KEYS: dict[Precision, str] = {
    Precision.FP32: "onnx",
    Precision.FP16: "onnx_fp16",
    Precision.BF16: "onnx_bf16",
    Precision.INT8: "onnx_int8",
}

# Runtimes that measure accuracy gates (the manifest's accuracy[precision]["runtimes"] keys).
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"


def openvino_installed() -> bool:
    """Whether OpenVINO can be imported here (without importing it: that takes a while)."""
    return importlib.util.find_spec("openvino") is not None


def artifact_key(precision: Precision | str) -> str:
    """The manifest key of the artifact that runs `precision` ("onnx_int8" for int8)."""
    return ARTIFACT_KEYS[Precision.parse(precision)]
