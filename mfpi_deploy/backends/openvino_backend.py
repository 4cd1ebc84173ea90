"""OpenVINO backend: the engine folder's ONNX (fp32, int8 QDQ, or fp32 with the bf16 hint) on the CPU.

OpenVINO fuses the QDQ convolutions of model.int8.onnx into int8 kernels and runs bf16 on
CPUs that have it, which onnxruntime's CPU provider does not. One compiled model per
(batch, tile) shape in use, static shapes being OpenVINO's fast path; compiled blobs are
cached on disk (CACHE_DIR under the engine cache). Two asynchronous infer requests let
`run_many` overlap the pipeline's reading and writing with inference, and each runs in a stream
of its own (throughput mode, the cores split between them) where there are cores for two: a
tile loop then computes more tiles per second than one stream on every core (INT8 on 2 cores:
1.19x bare, 1.14x for a whole `mfpi-run`, benchmarks/run/results/openvino-streams-4096-avx2.md),
for the memory of a second stream; `streams=1` keeps one batch's latency lowest (mfpi-serve,
mfpi-bench). Each inference writes straight into a fresh array that is handed to the caller:
no copy out of the request and no output buffer of the request's own (an idle request still
refers to the last array it wrote until its next batch is submitted).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.engine.cache import cache_root
from mfpi_deploy.engine.manifest import EngineFolder
from mfpi_deploy.engine.precision import Precision, artifact_key
from mfpi_deploy.errors import MfpiError

DEVICE = "CPU"
PRECISIONS = (Precision.FP32, Precision.BF16, Precision.INT8)
PRECISION_HINT = "INFERENCE_PRECISION_HINT"


def import_openvino() -> Any:
    """The openvino module, or a one-line MfpiError saying how to get it."""
    try:
        import openvino
    except ImportError:
        raise MfpiError(
            "OpenVINO is not installed (pip install 'mfpi-deploy[openvino]'); use --backend ort-cpu"
        ) from None
    return openvino


def cpu_capabilities() -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of this CPU (e.g. FP32, INT8, BF16); [] without OpenVINO."""
    try:
        ov = import_openvino()
        return [str(c) for c in ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")]
    except (MfpiError, RuntimeError):
        return []


def no_bf16_reason(capabilities: list[str] | None = None) -> str | None:
    """Why this CPU cannot run bf16 (OpenVINO would silently compute in fp32), or None."""
    caps = cpu_capabilities() if capabilities is None else capabilities
    if "BF16" in caps:
        return None
    return (
        f"this CPU has no bfloat16 arithmetic (OpenVINO's CPU capabilities: {', '.join(caps) or 'unknown'}), "
        f"so OpenVINO would run the bf16 variant in fp32"
    )


def compile_config(
    threads: int | None, precision: Precision, hints: dict[str, str] | None = None, streams: int = 1
) -> dict[str, Any]:
    """Properties for compile_model: latency mode (one stream on every thread) or, for `streams` > 1,
    throughput mode with that many streams sharing the threads; `threads`; the precision asked for.

    fp32 and int8 pin f32 as the inference precision: OpenVINO's default is bf16 on CPUs
    that have it, which would run a variant other than the one gated.
    """
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", PRECISION_HINT: "f32"}
    if streams > 1:
        config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": int(streams)})
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if precision is Precision.BF16:
        config[PRECISION_HINT] = "bf16"
    config.update(hints or {})
    return config


def compile_onnx(
    path: str | Path,
    input_shapes: dict[str, tuple[int, ...]],
    *,
    threads: int | None = None,
    precision: Precision = Precision.FP32,
    hints: dict[str, str] | None = None,
    cache_dir: Path | None = None,
    streams: int = 1,
) -> Any:
    """An ONNX file compiled for the CPU at static `input_shapes` (what the export gates run too)."""
    ov = import_openvino()
    core = ov.Core()
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache_dir)})
    try:
        model = core.read_model(str(path))
        model.reshape({name: list(shape) for name, shape in input_shapes.items()})
        return core.compile_model(model, DEVICE, compile_config(threads, precision, hints, streams))
    except RuntimeError as exc:
        raise MfpiError(f"{path}: OpenVINO cannot compile it ({str(exc).strip().splitlines()[0][:200]})") from None


def executed_precision(compiled: Any) -> str:
    """The inference precision a compiled model actually runs ("f32", "bf16")."""
    value = compiled.get_property(PRECISION_HINT)
    return str(value.get_type_name() if hasattr(value, "get_type_name") else value)


def stream_count(requests: int, threads: int | None, streams: int | None = None, cores: int | None = None) -> int:
    """Streams to compile with: `streams` if given, else one per infer request; never more than the
    threads (or cores) there are to run them, never fewer than one."""
    available = threads or cores or os.cpu_count() or 1
    wanted = requests if streams is None else streams
    return max(1, min(int(wanted), int(available)))


@dataclasses.dataclass
class _Compiled:
    """One compiled shape: its model and its infer requests (busy: indices in flight)."""

    model: Any
    requests: list[Any]
    busy: set[int] = dataclasses.field(default_factory=set)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.model.output(0).get_shape())


Ticket = tuple[_Compiled, int, np.ndarray]  # compiled shape, request index, the array it writes


class OpenVinoBackend(Backend):
    """Runs the `precision` variant of an engine folder with OpenVINO on the CPU.

    `requests` infer requests per compiled shape: `run_many` keeps that many batches in flight.
    `streams`: how many of them compute at once (None: one per request, at most one per thread).
    """

    kind = BackendKind.OPENVINO

    def __init__(
        self,
        folder: str | Path,
        *,
        precision: Precision | str = Precision.FP32,
        threads: int | None = None,
        requests: int = 2,
        streams: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        import_openvino()
        self.precision = Precision.parse(precision)
        if self.precision not in PRECISIONS:
            raise MfpiError(
                f"OpenVINO runs {', '.join(p.value for p in PRECISIONS)} variants, not {self.precision.value}"
            )
        if self.precision is Precision.BF16:
            reason = no_bf16_reason()
            if reason:
                raise MfpiError(f"{reason}; run --precision fp32 or int8")
        self.folder = EngineFolder(folder)
        key = artifact_key(self.precision)
        if not self.folder.has(key):
            raise MfpiError(
                f"{self.folder.path}: no {self.precision.value} variant (export it with "
                f"mfpi-export --{self.precision.value})"
            )
        self.path = self.folder.artifact(key)
        self.hints = dict(self.folder.manifest.artifacts[key].hints)
        self.spec = self.folder.spec(key, limited=False)
        self.threads = threads
        self.requests = max(1, requests)
        self.streams = stream_count(self.requests, threads, streams)
        self.cache_dir = cache_dir or cache_root() / "openvino"
        self._compiled: dict[tuple[int, ...], _Compiled] = {}
        self._inputs = ["tiles", "dpm"] if self.spec.needs_dpm else ["tiles"]

    def _get(self, n: int, h: int, w: int) -> _Compiled:
        shape = (n, h, w)
        if shape not in self._compiled:
            shapes = {"tiles": (n, h, w, self.spec.channels)}
            if self.spec.needs_dpm:
                shapes["dpm"] = (n,)
            model = compile_onnx(
                self.path,
                shapes,
                threads=self.threads,
                precision=self.precision,
                hints=self.hints,
                cache_dir=self.cache_dir,
                streams=self.streams,
            )
            self._compiled[shape] = _Compiled(model, [model.create_infer_request() for _ in range(self.requests)])
        return self._compiled[shape]

    def submit(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> Ticket:
        """Start a batch on a free infer request and return at once; `collect` waits for it."""
        self.spec.check_batch(tiles)
        n, h, w, _ = tiles.shape
        feeds = {"tiles": np.ascontiguousarray(tiles)}
        if self.spec.needs_dpm:
            if dpm is None:
                raise MfpiError("Deep-Z needs a DPM value per tile")
            feeds["dpm"] = np.ascontiguousarray(dpm, dtype=np.float32).reshape(n)
        compiled = self._get(n, h, w)
        free = [i for i in range(len(compiled.requests)) if i not in compiled.busy]
        if not free:
            raise MfpiError("every OpenVINO infer request is busy: collect() a batch before submitting another")
        index = free[0]
        request = compiled.requests[index]
        out = np.empty(compiled.output_shape, np.uint8)  # the request writes here; the caller keeps it
        request.set_output_tensor(0, import_openvino().Tensor(out, shared_memory=True))
        request.start_async(feeds, share_inputs=False)
        compiled.busy.add(index)
        return compiled, index, out

    def collect(self, ticket: Ticket) -> np.ndarray:
        """Wait for a submitted batch and return its planes (N, Z, sH, sW, C) uint8."""
        compiled, index, out = ticket
        try:
            compiled.requests[index].wait()
        finally:
            compiled.busy.discard(index)
        return out[:, None] if self.spec.needs_dpm else out

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        return self.collect(self.submit(tiles, dpm))

    def in_flight(self) -> int:
        return self.requests

    def host_cores(self) -> int:
        return self.threads or os.cpu_count() or 1

    def executed_precision(self) -> str:
        """What the compiled models compute in ("f32", "bf16"); compiles the smallest tile if none is yet."""
        if not self._compiled:
            side = self.spec.smallest_tile()
            self._get(1, side, side)
        return executed_precision(next(iter(self._compiled.values())).model)

    def close(self) -> None:
        self._compiled.clear()

    def describe(self) -> str:
        threads = f"{self.threads} thread(s)" if self.threads else "all cores"
        streams = f", {self.streams} streams" if self.streams > 1 else ""
        return f"{self.kind.value} ({self.spec.architecture}, {self.spec.precision}, CPU, {threads}{streams})"
