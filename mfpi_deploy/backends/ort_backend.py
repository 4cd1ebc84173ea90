"""onnxruntime backend: the engine folder's ONNX graph on the CPU, or on CUDA / TensorRT EPs.

On the CPU a batch runs when submitted. On CUDA, `submit` hands it to one worker thread
(onnxruntime lets go of the GIL while it runs), so `run_many` keeps two batches going and the
GPU computes the next while the caller writes the last.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.engine.cache import cache_root
from mfpi_deploy.engine.manifest import EngineFolder
from mfpi_deploy.engine.precision import Precision, artifact_key
from mfpi_deploy.errors import MfpiError

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
DEVICE_IN_FLIGHT = 2  # batches going at once on a GPU provider: one computes while the caller takes the last


def ort_providers(
    kind: BackendKind, available: list[str], *, device_id: int = 0, trt_ep: bool = False, trt_cache: Path | None = None
) -> list:
    """The providers list for InferenceSession, or MfpiError naming what is missing.

    ort-cuda may put onnxruntime's TensorRT EP first (`trt_ep`), with its engine and timing
    caches in `trt_cache` so later sessions skip the build.
    """
    if kind is BackendKind.ORT_CPU:
        if trt_ep:
            raise MfpiError("the TensorRT execution provider needs --backend ort-cuda")
        return [CPU_EP]
    if kind is not BackendKind.ORT_CUDA:
        raise MfpiError(f"onnxruntime cannot run as {kind.value}")
    if CUDA_EP not in available:
        raise MfpiError("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    providers: list = [(CUDA_EP, {"device_id": device_id}), CPU_EP]
    if trt_ep:
        if TRT_EP not in available:
            raise MfpiError("onnxruntime has no TensorrtExecutionProvider (install onnxruntime-gpu and TensorRT)")
        opts: dict[str, object] = {"device_id": device_id}
        if trt_cache is not None:
            opts.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(trt_cache),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(trt_cache),
            )
        providers.insert(0, (TRT_EP, opts))
    return providers


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers ([] if onnxruntime is missing)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def session_options(threads: int | None):
    """SessionOptions with full graph optimisation and `threads` intra-op threads (None: all cores)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    # Without the CPU arena, memory freed after a tile goes back to the system instead of staying
    # reserved: a 608 px tile of the bundled model peaked at 0.87 GB instead of 1.63 GB, no slower.
    opts.enable_cpu_mem_arena = False
    return opts


class OrtBackend(Backend):
    """Runs the `precision` variant of an engine folder: model.onnx, model.fp16.onnx (also `fp16=True`)
    or model.int8.onnx (QDQ: onnxruntime fuses it into integer convolutions).

    On ort-cuda, `trt_ep=True` lets onnxruntime's TensorRT execution provider take the graph.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        kind: BackendKind = BackendKind.ORT_CPU,
        threads: int | None = None,
        fp16: bool = False,
        device_id: int = 0,
        trt_ep: bool = False,
        precision: Precision | str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.folder = EngineFolder(folder)
        self.kind = kind
        self.threads = threads
        precision = Precision.parse(precision) if precision else (Precision.FP16 if fp16 else Precision.FP32)
        if precision is Precision.BF16:
            raise MfpiError("onnxruntime has no bf16 variant to run; bf16 runs on --backend openvino")
        key = artifact_key(precision)
        if not self.folder.has(key):
            raise MfpiError(
                f"{self.folder.path}: no {precision.value} variant (export it with mfpi-export --{precision.value})"
            )
        path = self.folder.artifact(key)
        self.spec = self.folder.spec(key, limited=False)
        trt_cache = None
        if trt_ep:
            trt_cache = cache_root() / "ort-trt" / self.folder.manifest.artifacts[key].sha256[:16]
            trt_cache.mkdir(parents=True, exist_ok=True)
        providers = ort_providers(kind, available_providers(), device_id=device_id, trt_ep=trt_ep, trt_cache=trt_cache)
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise MfpiError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._worker: ThreadPoolExecutor | None = None

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        self.spec.check_batch(tiles)
        feeds = {self.input_names[0]: np.ascontiguousarray(tiles)}
        if self.spec.needs_dpm:
            if dpm is None:
                raise MfpiError("Deep-Z needs a DPM value per tile")
            feeds[self.input_names[1]] = np.ascontiguousarray(dpm, dtype=np.float32).reshape(len(tiles))
        out = self.session.run(None, feeds)[0]
        return out[:, None] if self.spec.needs_dpm else out

    def in_flight(self) -> int:
        return 1 if self.kind is BackendKind.ORT_CPU else DEVICE_IN_FLIGHT

    def submit(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray | Future:
        if self.in_flight() == 1:
            return self.run(tiles, dpm)
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="mfpi-ort")
        # copies: the caller may refill its buffers while this batch waits for the worker
        return self._worker.submit(self.run, np.array(tiles, order="C"), None if dpm is None else np.array(dpm))

    def collect(self, ticket: np.ndarray | Future) -> np.ndarray:
        return ticket.result() if isinstance(ticket, Future) else ticket

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    def host_cores(self) -> int:
        return (self.threads or os.cpu_count() or 1) if self.kind is BackendKind.ORT_CPU else 0

    def describe(self) -> str:
        eps = ", ".join(self.session.get_providers())
        return f"{self.kind.value} ({self.spec.architecture}, {self.spec.precision}, {eps})"
