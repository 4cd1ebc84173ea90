"""BF16 variant: model.onnx run by OpenVINO with INFERENCE_PRECISION_HINT bf16, gated against fp32.

No new graph: the variant is the fp32 ONNX plus the hint, recorded in the manifest. The gate
(per-plane PSNR against onnxruntime fp32 on real and simulated tiles) runs OpenVINO itself
on a CPU with bfloat16 arithmetic (AVX512-BF16 or AMX). Elsewhere OpenVINO would quietly
compute in fp32, so the gate is emulated instead: every float input of every node up to the
last convolution (activations and weights) rounded to bfloat16 in onnxruntime, i.e. bf16
storage with fp32 accumulation as oneDNN's bf16 convolutions do. The manifest says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from mfpi_deploy.engine.precision import OPENVINO, Precision
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.export import accuracy
from mfpi_deploy.export.fp16_graph import ALWAYS_FP32, tensor_types
from mfpi_deploy.export.runtimes import openvino_runner, ort_runner, planes

HINTS = {"INFERENCE_PRECISION_HINT": "bf16"}
METHOD_OPENVINO = "openvino"
METHOD_EMULATED = "emulated"


class Bf16GateError(accuracy.GateError):
    """bf16 inference is not accurate enough against float32."""

    precision = "bf16"


@dataclass
class Bf16Report:
    runtimes: dict[str, dict[str, object]]  # "openvino" -> per-plane PSNR, min, parity, method
    min_psnr_db: float
    threshold_db: float
    method: str  # openvino | emulated
    note: str
    hints: dict[str, str] = field(default_factory=lambda: dict(HINTS))
    tiles: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def emulate_bf16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose float node inputs up to the last convolution are rounded to bfloat16."""
    types = tensor_types(model)
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")]
    last = convs[-1] if convs else -1
    rounded: dict[str, str] = {}
    out: list[onnx.NodeProto] = []
    for index, node in enumerate(nodes):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        if index <= last:
            for i, name in enumerate(node.input):
                if not name or types.get(name) != TensorProto.FLOAT or (node.op_type, i) in ALWAYS_FP32:
                    continue
                if name not in rounded:
                    k = len(rounded)
                    half, back = f"{name}__bf16_{k}", f"{name}__bf16rt_{k}"
                    out.append(
                        helper.make_node("Cast", [name], [half], name=f"bf16_round_{k}", to=TensorProto.BFLOAT16)
                    )
                    out.append(helper.make_node("Cast", [half], [back], name=f"bf16_back_{k}", to=TensorProto.FLOAT))
                    rounded[name] = back
                copy.input[i] = rounded[name]
        out.append(copy)
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(out)
    return result


def measure_bf16(
    fp32_path: Path,
    spec: EngineSpec,
    real: np.ndarray,
    simulated: np.ndarray,
    *,
    min_psnr: float = 45.0,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> Bf16Report:
    """Gate the bf16 variant of `fp32_path` (OpenVINO on a bf16 CPU, else emulated); Bf16GateError if it fails."""
    from mfpi_deploy.backends.base import BackendKind
    from mfpi_deploy.backends.openvino_backend import no_bf16_reason
    from mfpi_deploy.backends.select import runtime_missing

    reference = ort_runner(fp32_path, threads)
    why_not = runtime_missing(BackendKind.OPENVINO) or no_bf16_reason()
    if why_not is None:
        method, note = METHOD_OPENVINO, "measured with OpenVINO on this CPU (bf16 arithmetic)"
        run = openvino_runner(fp32_path, threads, Precision.BF16, HINTS)
    else:
        method = METHOD_EMULATED
        note = (
            f"emulated in onnxruntime (node inputs up to the last convolution rounded to bf16): {why_not}; "
            f"export on a CPU with bf16 to measure OpenVINO itself"
        )
        run = ort_runner(emulate_bf16(onnx.load(str(fp32_path))), threads)
        log(f"bf16: {why_not}; the gate is emulated")
    figures: dict[str, list[float]] = {}
    par = None
    for name, tiles in (("real", real), ("simulated", simulated)):
        if not len(tiles):
            continue
        want, got = planes(reference, spec, tiles), planes(run, spec, tiles)
        figures[name] = accuracy.psnr_per_plane(got, want)
        p = accuracy.parity(got, want)
        par = p if par is None else par.merge(p)
    worst = min(min(p) for p in figures.values())
    if worst < min_psnr:
        raise Bf16GateError(
            f"bf16 accuracy gate failed ({method}): lowest plane PSNR {worst:.1f} dB < {min_psnr} dB "
            f"(real {figures.get('real', [])}, simulated {figures.get('simulated', [])})",
            min_psnr_db=worst,
            threshold_db=min_psnr,
        )
    report = Bf16Report(
        runtimes={
            OPENVINO: {
                "psnr_db_real": figures.get("real", []),
                "psnr_db_simulated": figures.get("simulated", []),
                "min_psnr_db": worst,
                "parity": par.to_dict() if par else {},
                "method": method,
            }
        },
        min_psnr_db=worst,
        threshold_db=min_psnr,
        method=method,
        note=note,
        tiles={"real": int(len(real)), "simulated": int(len(simulated)), "side": int(simulated.shape[1])},
    )
    log(f"bf16 gate ({method}): lowest plane PSNR {worst:.1f} dB (>= {min_psnr})")
    return report
