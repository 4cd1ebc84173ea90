"""INT8 ONNX (QDQ) by static quantization, gated: convolutions that break accuracy stay float32, by measurement.

Only convolutions are quantized (nearly all of the FLOPs; element-wise ops stay float32),
with onnxruntime.quantization.quantize_static in the QDQ format, which onnxruntime and
OpenVINO both fuse into integer convolutions:
- weights int8 per output channel with a 7-bit range (reduce_range): CPUs without VNNI
  multiply uint8 x int8 pairs into saturating int16 (vpmaddubsw); 7-bit weights cannot
  saturate, so a graph gated on one x86 CPU stays accurate on the others;
- activations uint8 per tensor, min/max over calibration tiles held apart from the gate's.
Search, like the FP16 pass: quantize every convolution and run the gate (per-plane PSNR
against fp32 on real and simulated tiles) on every runtime installed. While a plane is
under the threshold, try keeping in float32 the first and the last convolution and the
TRIALS convolutions whose error grows most over their inputs' (relative RMS of the worst
channel, onnxruntime); keep the one that lifts the probe's worst plane most (or, when none
lifts it, the largest error source), at most MAX_ROUNDS times; still failing, the export is
refused with the numbers.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export import accuracy
from mfpi_deploy.export.fp16_graph import expose
from mfpi_deploy.export.runtimes import feeds, gate_runtimes, planes, runner

MAX_ROUNDS = 8
TRIALS = 4
MIN_LIFT_DB = 0.5  # a trial lifting the probe's worst plane less than this is no lift
QUANTIZED_OPS = ("Conv",)
SETTINGS = {
    "format": "QDQ (onnxruntime.quantization.quantize_static)",
    "ops": list(QUANTIZED_OPS),
    "weights": "int8, per output channel, 7-bit range (reduce_range: no int16 saturation without VNNI)",
    "activations": "uint8, per tensor, min/max calibration",
}


class Int8GateError(accuracy.GateError):
    """The int8 graph is not accurate enough against float32."""

    precision = "int8"


@dataclass
class Int8Report:
    runtimes: dict[str, dict[str, object]]  # runtime -> per-plane psnr_db_real/_simulated, min_psnr_db, parity
    min_psnr_db: float
    threshold_db: float
    fp32_nodes: list[str]  # convolutions kept in float32
    reasons: dict[str, str]  # node -> why it was kept in float32
    quantized_convs: int
    convs: int
    rounds: int = 0
    tiles: dict[str, int] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=lambda: dict(SETTINGS))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """quantize_static logs advice (pre-processing) on the root logger: keep the CLI output to our lines."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _Quantizer:
    """quantize_static with a fixed calibration: ranges measured once, reused for every exclusion set."""

    def __init__(self, fp32_path: Path, spec: EngineSpec, calibration: np.ndarray, workdir: Path) -> None:
        from onnxruntime.quantization import quantize_static

        self.fp32_path, self.spec, self.calibration, self.workdir = fp32_path, spec, calibration, workdir
        self.cache = workdir / "calibration.json"
        self.reuse = "calibration_cache_path" in inspect.signature(quantize_static).parameters
        self.count = 0

    def reader(self):
        from onnxruntime.quantization import CalibrationDataReader

        items = iter([feeds(self.spec, self.calibration[i : i + 1]) for i in range(len(self.calibration))])

        class Reader(CalibrationDataReader):
            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(items, None)

        return Reader()

    def __call__(self, keep_fp32: set[str]) -> Path:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        self.count += 1
        out = self.workdir / f"trial{self.count}.onnx"
        extra = {"calibration_cache_path": str(self.cache)} if self.reuse else {}
        with _quiet():
            quantize_static(
                str(self.fp32_path),
                str(out),
                self.reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=sorted(keep_fp32),
                **extra,
            )
        return out


Figures = dict[str, dict[str, list[float]]]  # runtime -> tile set -> per-plane PSNR


def _measure(
    path: Path,
    spec: EngineSpec,
    runtimes: list[str],
    sets: dict[str, np.ndarray],
    want: dict[str, np.ndarray],
    threads: int | None,
) -> tuple[Figures, dict[str, accuracy.Parity]]:
    """Per-plane PSNR against fp32 (per runtime and tile set) and uint8 parity (per runtime) of the graph at `path`."""
    figures: Figures = {}
    parities: dict[str, accuracy.Parity] = {}
    for rt in runtimes:
        run = runner(rt, path, threads, Precision.INT8)
        figures[rt] = {}
        for name, tiles in sets.items():
            if not len(tiles):
                continue
            got = planes(run, spec, tiles)
            figures[rt][name] = accuracy.psnr_per_plane(got, want[name])
            p = accuracy.parity(got, want[name])
            parities[rt] = parities[rt].merge(p) if rt in parities else p
    return figures, parities


def _channel_error(test: np.ndarray, ref: np.ndarray) -> float:
    """Relative RMS error of the worst channel (axis 1) of `test` against `ref`: a per-tensor INT8
    scale set by one channel of large values can wipe out the others, which a whole-tensor ratio hides."""
    a, b = ref.astype(np.float64), test.astype(np.float64)
    axes = tuple(i for i in range(a.ndim) if i != 1) if a.ndim > 1 else (0,)
    whole = float(np.sqrt(np.mean(a * a))) or 1e-12
    rms, err = np.sqrt(np.mean(a * a, axis=axes)), np.sqrt(np.mean((b - a) ** 2, axis=axes))
    return float(np.max(err / np.maximum(rms, 1e-3 * whole)))


def _ranked_groups(
    model32: onnx.ModelProto,
    model8: onnx.ModelProto,
    spec: EngineSpec,
    tiles: np.ndarray,
    threads: int | None,
    kept: set[str],
) -> list[tuple[frozenset[str], str]]:
    """Activation quantizations ranked by the error each adds, as the convolutions to keep in fp32 to undo it.

    For each QuantizeLinear -> DequantizeLinear on an activation T: error added = worst-channel
    error of DQ(Q(T)) minus that of T itself in the int8 graph, both against fp32 T. The
    quantization of T goes away when its producer (if a convolution) and the convolutions that
    read it stay fp32.
    """
    inits = {i.name for i in model8.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model8.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    points = [
        (q.input[0], d.output[0])
        for q in model8.graph.node
        if q.op_type == "QuantizeLinear" and q.input[0] not in inits
        for d in readers.get(q.output[0], [])
        if d.op_type == "DequantizeLinear"
    ]
    convs32 = {n.name: n for n in model32.graph.node if n.op_type in QUANTIZED_OPS}
    producer = {o: n.name for n in convs32.values() for o in n.output}
    inputs = feeds(spec, tiles)
    tensors = sorted({t for t, _ in points})
    want = dict(zip(tensors, _outputs(model32, tensors, inputs, threads)))
    got = dict(
        zip([*tensors, *(d for _, d in points)], _outputs(model8, [*tensors, *(d for _, d in points)], inputs, threads))
    )
    ranked = []
    for tensor, dq in points:
        group = {n.name for n in convs32.values() if tensor in n.input}
        if tensor in producer:
            group.add(producer[tensor])
        if not group or group <= kept:
            continue
        added = _channel_error(got[dq], want[tensor]) - _channel_error(got[tensor], want[tensor])
        ranked.append(
            (added, frozenset(group - kept), f"quantizing {tensor} adds {added:.3g} relative error (worst channel)")
        )
    ranked.sort(key=lambda r: -r[0])
    seen: set[frozenset[str]] = set()
    out = []
    for _, group, why in ranked:
        if group not in seen:
            seen.add(group)
            out.append((group, why))
    return out


def _outputs(
    model: onnx.ModelProto, names: list[str], inputs: dict[str, np.ndarray], threads: int | None
) -> list[np.ndarray]:
    """Values of the tensors `names` of `model` (exposed as extra outputs) on `inputs`."""
    import onnxruntime as ort

    from mfpi_deploy.backends.ort_backend import session_options

    exposed = expose(model, names)
    opts = session_options(threads)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as written: Q/DQ not fused
    sess = ort.InferenceSession(exposed.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs)))
    return [values[n] for n in names]


def _worst(figures: Figures) -> float:
    return min(min(p) for sets in figures.values() for p in sets.values())


def _numbers(figures: Figures) -> str:
    return "; ".join(f"{rt}: " + ", ".join(f"{name} {p}" for name, p in sets.items()) for rt, sets in figures.items())


def export_int8(
    fp32_path: Path,
    out_path: Path,
    spec: EngineSpec,
    real: np.ndarray,
    simulated: np.ndarray,
    calibration: np.ndarray,
    *,
    min_psnr: float = 45.0,
    threads: int | None = None,
    runtimes: list[str] | None = None,
    max_rounds: int | None = None,
    log: Callable[[str], None] = print,
) -> Int8Report:
    """Write the gated int8 graph of `fp32_path` to `out_path`; raise Int8GateError if it fails.

    `real` and `simulated` are the gate's tiles, `calibration` the tiles activation ranges come from.
    """
    runtimes = runtimes or gate_runtimes()
    max_rounds = MAX_ROUNDS if max_rounds is None else max_rounds
    model32 = onnx.load(str(fp32_path))
    convs = [n.name for n in model32.graph.node if n.op_type in QUANTIZED_OPS]
    if not convs:
        raise MfpiError(f"{fp32_path}: no convolution to quantize")
    reference = runner("onnxruntime", fp32_path, threads)
    sets = {"real": real, "simulated": simulated}
    want = {name: planes(reference, spec, tiles) for name, tiles in sets.items() if len(tiles)}
    probe = np.concatenate([t[:2] for t in sets.values() if len(t)])
    probe_sets, probe_want = {"probe": probe}, {"probe": planes(reference, spec, probe)}
    reasons: dict[str, str] = {}
    rounds = 0
    with tempfile.TemporaryDirectory(prefix="mfpi-int8-") as tmp:
        quantize = _Quantizer(fp32_path, spec, calibration, Path(tmp))
        while True:
            path = quantize(set(reasons))
            figures, parities = _measure(path, spec, runtimes, sets, want, threads)
            worst = _worst(figures)
            if worst >= min_psnr:
                break
            rounds += 1
            if rounds > max_rounds:
                raise Int8GateError(
                    f"int8 accuracy gate failed: lowest plane PSNR {worst:.1f} dB < {min_psnr} dB "
                    f"({_numbers(figures)}) with {len(reasons)} of {len(convs)} convolution(s) "
                    f"kept in fp32 after {max_rounds} round(s)",
                    min_psnr_db=worst,
                    threshold_db=min_psnr,
                )
            ranked = _ranked_groups(model32, onnx.load(str(path)), spec, probe, threads, set(reasons))
            structural = {convs[0]: "first convolution", convs[-1]: "last convolution"}
            candidates = [(frozenset({n}), why) for n, why in structural.items() if n not in reasons]
            candidates += [(g, why) for g, why in ranked[:TRIALS] if all(g != c for c, _ in candidates)]
            if not candidates:
                raise Int8GateError(
                    f"int8 accuracy gate failed: lowest plane PSNR {worst:.1f} dB < {min_psnr} dB "
                    f"({_numbers(figures)}) and no convolution left to keep in fp32",
                    min_psnr_db=worst,
                    threshold_db=min_psnr,
                )
            trials = []
            for group, why in candidates:
                lifted = _worst(
                    _measure(quantize(set(reasons) | group), spec, runtimes, probe_sets, probe_want, threads)[0]
                )
                trials.append((lifted, sorted(group), why))
            best, names, why = max(trials)
            if best < worst + MIN_LIFT_DB and ranked:
                # No single change lifts the output (two quantizations in a row can each break it):
                # take the largest measured error source and look again.
                group, why = ranked[0]
                names = sorted(group)
                best = next((t[0] for t in trials if t[1] == names), best)
            for name in names:
                reasons[name] = (
                    f"{why}; keeping it in fp32 gives the probe's lowest plane {best:.1f} dB "
                    f"(gate at {worst:.1f} dB before)"
                )
            name = ", ".join(names)
            log(f"int8: plane PSNR {worst:.1f} dB < {min_psnr} dB, keeping {name} ({why}) in fp32")
        shutil.copyfile(path, out_path)  # the graph the gate measured
    onnx.checker.check_model(onnx.load(str(out_path)), full_check=True)
    report_runtimes = {
        rt: {
            "psnr_db_real": figs.get("real", []),
            "psnr_db_simulated": figs.get("simulated", []),
            "min_psnr_db": min(min(p) for p in figs.values()),
            "parity": parities[rt].to_dict(),
        }
        for rt, figs in figures.items()
    }
    report = Int8Report(
        runtimes=report_runtimes,
        min_psnr_db=worst,
        threshold_db=min_psnr,
        fp32_nodes=sorted(reasons),
        reasons=reasons,
        quantized_convs=len(convs) - len(reasons),
        convs=len(convs),
        rounds=rounds,
        tiles={
            "real": int(len(real)),
            "simulated": int(len(simulated)),
            "calibration": int(len(calibration)),
            "side": int(simulated.shape[1]),
        },
    )
    log(
        f"int8 gate: lowest plane PSNR {worst:.1f} dB (>= {min_psnr}) on {', '.join(runtimes)}; "
        f"{report.quantized_convs} of {len(convs)} convolutions in int8"
    )
    return report
