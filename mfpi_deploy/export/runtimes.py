"""The runtimes an export gate measures a variant on: onnxruntime always, OpenVINO when installed.

A variant is gated on every runtime that will run it, because they execute it differently
(OpenVINO fuses a QDQ graph into its own int8 kernels, with its own handling of the first
convolution); the manifest records the figures per runtime and backends refuse a runtime
the gate did not measure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from mfpi_deploy.engine.precision import ONNXRUNTIME, OPENVINO, Precision, openvino_installed
from mfpi_deploy.engine.spec import EngineSpec

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


def feeds(spec: EngineSpec, tiles: np.ndarray) -> dict[str, np.ndarray]:
    """Graph inputs for a batch of tiles (Deep-Z: DPM values spread over its range, deterministic)."""
    out = {"tiles": tiles}
    if spec.needs_dpm:
        out["dpm"] = np.linspace(-2.5, 2.5, len(tiles)).astype(np.float32)
    return out


def gate_runtimes() -> list[str]:
    """The runtimes installed here that gates measure on."""
    return [ONNXRUNTIME] + ([OPENVINO] if openvino_installed() else [])


def ort_runner(model: str | Path | onnx.ModelProto, threads: int | None) -> Runner:
    """onnxruntime CPU session of an ONNX file or model (full graph optimisation: QDQ fused)."""
    import onnxruntime as ort

    from mfpi_deploy.backends.ort_backend import session_options

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
    return lambda inputs: sess.run(None, inputs)[0]


def openvino_runner(
    path: str | Path, threads: int | None, precision: Precision = Precision.FP32, hints: dict[str, str] | None = None
) -> Runner:
    """OpenVINO CPU, compiled once per input shape (as the backend does)."""
    from mfpi_deploy.backends.openvino_backend import compile_onnx

    compiled: dict[tuple, object] = {}

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        key = tuple((k, v.shape) for k, v in inputs.items())
        if key not in compiled:
            compiled[key] = compile_onnx(
                path, {k: v.shape for k, v in inputs.items()}, threads=threads, precision=precision, hints=hints
            )
        request = compiled[key].create_infer_request()  # type: ignore[attr-defined]
        request.infer(inputs)
        return request.get_output_tensor(0).data.copy()

    return run


def runner(runtime: str, path: str | Path, threads: int | None, precision: Precision = Precision.FP32) -> Runner:
    return ort_runner(path, threads) if runtime == ONNXRUNTIME else openvino_runner(path, threads, precision)


def planes(run: Runner, spec: EngineSpec, tiles: np.ndarray) -> np.ndarray:
    """The (N, Z, sH, sW, C) output of `run` on `tiles` (Deep-Z's graph has no plane axis)."""
    out = run(feeds(spec, tiles))
    return out[:, None] if spec.needs_dpm else out
