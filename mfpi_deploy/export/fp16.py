"""FP16 ONNX with an accuracy gate: which nodes stay float32 is decided by measurement.

1. Range: run the fp32 graph with every intermediate exposed on real and simulated tiles;
   a node whose input or output exceeds FP16_SAFE_MAX (half of float16's 65504, leaving
   headroom for tiles brighter than the calibration set) is kept in float32.
2. Error: convert, run the gate (PSNR of each output plane against fp32, over real and
   simulated tiles). While a plane is under the threshold, expose intermediates of both
   graphs, find the node whose float16 error grows most over its inputs' error, keep it in
   float32 and try again (at most MAX_ROUNDS times). Still failing: export fails with the numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper

from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.export import accuracy
from mfpi_deploy.export.fp16_graph import FP16, FP32, convert_to_fp16, expose, float_node_outputs, tensor_types

FP16_MAX = 65504.0
FP16_SAFE_MAX = FP16_MAX / 2
MAX_ROUNDS = 8
TRIALS = 4
TAIL_GAIN_DB = 3.0  # keep the output tail in fp32 if that lifts the lowest plane PSNR this much


class Fp16GateError(accuracy.GateError):
    """The float16 graph is not accurate enough against float32."""

    precision = "fp16"


@dataclass
class Fp16Report:
    psnr_db_real: list[float]  # per plane, fp16 vs fp32 output on real tiles ([] without real data)
    psnr_db_simulated: list[float]
    min_psnr_db: float
    threshold_db: float
    fp32_nodes: list[str]
    reasons: dict[str, str]  # node -> why it was kept in float32
    max_abs_activation: float  # largest |value| of any tensor before the output tail (fp32 graph, calibration)
    parity: dict[str, float | int] = field(default_factory=dict)  # fp16 vs fp32 uint8 output
    rounds: int = 0
    tiles: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _session(model: onnx.ModelProto, threads: int | None):
    import onnxruntime as ort

    from mfpi_deploy.backends.ort_backend import session_options

    return ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])


def _feeds(spec: EngineSpec, tiles: np.ndarray) -> dict[str, np.ndarray]:
    feeds = {"tiles": tiles}
    if spec.needs_dpm:  # spread over the planes' DPM range, deterministic
        feeds["dpm"] = np.linspace(-2.5, 2.5, len(tiles)).astype(np.float32)
    return feeds


def measure_ranges(
    model: onnx.ModelProto, spec: EngineSpec, batches: list[np.ndarray], threads: int | None = None
) -> dict[str, float]:
    """Largest |value| of every float initializer and intermediate tensor over the batches (one tile at a time)."""
    names = float_node_outputs(model)
    sess = _session(expose(model, names), threads)
    out_names = [o.name for o in sess.get_outputs()]
    ranges = dict.fromkeys(names, 0.0)
    for init in model.graph.initializer:  # constants too: 1e6 as float16 is inf
        if init.data_type == FP32:
            arr = onnx.numpy_helper.to_array(init)
            ranges[init.name] = float(np.abs(arr).max()) if arr.size else 0.0
    for batch in batches:
        feeds = _feeds(spec, batch)
        for i in range(len(batch)):
            values = sess.run(None, {k: v[i : i + 1] for k, v in feeds.items()})
            for name, v in zip(out_names, values):
                if name in ranges and v.size:
                    ranges[name] = max(ranges[name], float(np.nanmax(np.abs(v.astype(np.float32)))))
    return ranges


def overflow_nodes(model: onnx.ModelProto, ranges: dict[str, float], limit: float = FP16_SAFE_MAX) -> dict[str, str]:
    """Nodes with a float input or output beyond `limit`: node name -> reason."""
    out = {}
    for node in model.graph.node:
        for name in [*node.input, *node.output]:
            if ranges.get(name, 0.0) > limit:
                out[node.name] = f"|{name}| reaches {ranges[name]:.4g} > {limit:.4g} (float16 max {FP16_MAX:.0f})"
                break
    return out


def relative_errors(
    model32: onnx.ModelProto, model16: onnx.ModelProto, spec: EngineSpec, tiles: np.ndarray, threads: int | None = None
) -> dict[str, float]:
    """RMS(fp16 - fp32) / RMS(fp32) of every float intermediate present in both graphs."""
    names = float_node_outputs(model32)
    types16 = tensor_types(model16)
    names = [n for n in names if types16.get(n) in (FP16, FP32)]
    s32 = _session(expose(model32, names), threads)
    s16 = _session(expose(model16, names, {n: types16[n] for n in names}), threads) if names else None
    errors: dict[str, float] = {}
    if s16 is None:
        return errors
    feeds = _feeds(spec, tiles)
    v32 = dict(zip([o.name for o in s32.get_outputs()], s32.run(None, feeds)))
    v16 = dict(zip([o.name for o in s16.get_outputs()], s16.run(None, feeds)))
    for name in names:
        a, b = v32[name].astype(np.float64), v16[name].astype(np.float64)
        denom = float(np.sqrt(np.mean(a * a))) or 1e-12
        errors[name] = float(np.sqrt(np.mean((b - a) ** 2))) / denom
    return errors


# Ops that only re-quantise or move values: keeping them in fp32 cannot undo upstream error.
_NOT_CANDIDATES = {
    "Round",
    "Clip",
    "Cast",
    "Shape",
    "Reshape",
    "Transpose",
    "Concat",
    "Squeeze",
    "Unsqueeze",
    "Expand",
    "Tile",
    "Resize",
    "DepthToSpace",
    "MaxPool",
}


def error_gains(model: onnx.ModelProto, errors: dict[str, float], exclude: set[str]) -> list[tuple[str, float]]:
    """Nodes ranked by how much their output's relative error grows over their inputs' largest error."""
    gains = []
    for node in model.graph.node:
        if node.name in exclude or node.op_type in _NOT_CANDIDATES or not node.output or node.output[0] not in errors:
            continue
        inherited = max((errors.get(i, 0.0) for i in node.input if i), default=0.0)
        gains.append((node.name, errors[node.output[0]] - inherited))
    return sorted(gains, key=lambda g: -g[1])


def _network_max(model: onnx.ModelProto, ranges: dict[str, float]) -> float:
    """Largest measured |value| outside the output tail (whose x*255 would always read 255)."""
    tail = set(output_tail(model))
    tail_outputs = {o for n in model.graph.node if n.name in tail for o in n.output}
    return max((v for k, v in ranges.items() if k not in tail_outputs), default=0.0)


def output_tail(model: onnx.ModelProto) -> list[str]:
    """Nodes after the last convolution: the cheap element-wise tail that scales to 0..255 and rounds.

    In float16, x * 255 near 255 is only resolved to 1/8 of a level, so rounding to uint8
    flips often; whether that dominates the error is measured (see export_fp16).
    """
    types = tensor_types(model)
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")]
    tail = nodes[convs[-1] + 1 :] if convs else []
    return [n.name for n in tail if any(types.get(o) == FP32 for o in n.output)]


def _gate(s32, s16, spec: EngineSpec, tiles: np.ndarray) -> tuple[list[float], accuracy.Parity | None]:
    if not len(tiles):
        return [], None
    a = s32.run(None, _feeds(spec, tiles))[0]
    b = s16.run(None, _feeds(spec, tiles))[0]
    if spec.needs_dpm:
        a, b = a[:, None], b[:, None]
    return accuracy.psnr_per_plane(b, a), accuracy.parity(b, a)


def export_fp16(
    fp32_path: Path,
    out_path: Path,
    spec: EngineSpec,
    real: np.ndarray,
    simulated: np.ndarray,
    *,
    min_psnr: float = 45.0,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> Fp16Report:
    """Write the gated float16 graph of `fp32_path` to `out_path`; raise Fp16GateError if it fails."""
    model32 = onnx.load(str(fp32_path))
    batches = [b for b in (real, simulated) if len(b)]
    ranges = measure_ranges(model32, spec, batches, threads)
    reasons = overflow_nodes(model32, ranges)
    s32 = _session(model32, threads)
    probe = np.concatenate([b[:2] for b in batches])
    tail = [n for n in output_tail(model32) if n not in reasons]
    if tail:  # measure whether the output tail's float16 rounding dominates the error
        before = min(_gate(s32, _session(convert_to_fp16(model32, set(reasons)), threads), spec, probe)[0])
        after = min(_gate(s32, _session(convert_to_fp16(model32, set(reasons) | set(tail)), threads), spec, probe)[0])
        if after - before >= TAIL_GAIN_DB:
            for name in tail:
                reasons[name] = (
                    f"output tail (after the last conv): in fp32 the probe's lowest plane PSNR is "
                    f"{after:.1f} dB instead of {before:.1f} dB"
                )
    rounds = 0
    while True:
        model16 = convert_to_fp16(model32, set(reasons))
        s16 = _session(model16, threads)
        psnr_real, par_real = _gate(s32, s16, spec, real)
        psnr_sim, par_sim = _gate(s32, s16, spec, simulated)
        worst = min(psnr_real + psnr_sim)
        if worst >= min_psnr:
            break
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise Fp16GateError(
                f"fp16 accuracy gate failed: lowest plane PSNR {worst:.1f} dB < {min_psnr} dB "
                f"(real {psnr_real}, simulated {psnr_sim}) with {len(reasons)} node(s) kept in fp32",
                min_psnr_db=worst,
                threshold_db=min_psnr,
            )
        ranked = error_gains(model32, relative_errors(model32, model16, spec, probe, threads), set(reasons))
        if not ranked:
            raise Fp16GateError(
                f"fp16 accuracy gate failed: lowest plane PSNR {worst:.1f} dB < {min_psnr} dB "
                "and no node left to keep in fp32",
                min_psnr_db=worst,
                threshold_db=min_psnr,
            )
        # Try the TRIALS nodes with the largest error gain; keep the one that helps the output most.
        trials = []
        for name, gain in ranked[:TRIALS]:
            trial = _session(convert_to_fp16(model32, set(reasons) | {name}), threads)
            trials.append((min(_gate(s32, trial, spec, probe)[0]), name, gain))
        best_psnr, name, gain = max(trials)
        reasons[name] = (
            f"fp16 error gain {gain:.3g} (relative RMS); keeping it in fp32 lifts the probe's "
            f"lowest plane PSNR to {best_psnr:.1f} dB (gate at {worst:.1f} dB before)"
        )
        log(f"fp16: plane PSNR {worst:.1f} dB < {min_psnr} dB, keeping {name} in fp32")
    onnx.checker.check_model(model16, full_check=True)
    onnx.save_model(model16, str(out_path), save_as_external_data=False)
    par = par_real.merge(par_sim) if par_real and par_sim else (par_real or par_sim)
    report = Fp16Report(
        psnr_db_real=psnr_real,
        psnr_db_simulated=psnr_sim,
        min_psnr_db=worst,
        threshold_db=min_psnr,
        fp32_nodes=sorted(reasons),
        reasons=reasons,
        max_abs_activation=round(_network_max(model32, ranges), 4),
        parity=par.to_dict() if par else {},
        rounds=rounds,
        tiles={"real": int(len(real)), "simulated": int(len(simulated)), "side": int(simulated.shape[1])},
    )
    log(
        f"fp16 gate: lowest plane PSNR {worst:.1f} dB (>= {min_psnr}), {len(reasons)} node(s) kept in fp32, "
        f"largest activation {report.max_abs_activation:.4g}"
    )
    return report
