"""TensorRT backend (pycuda): page-locked host buffers, async copies, execute_async_v3.

Buffers are sized once from the engine's profiles (engine.profiles.buffer_bytes). Two slots,
each with its own execution context, stream and buffers, let the copies of one batch overlap
the compute of the other: `submit` starts a batch and returns at once, `collect` waits for
it; `run_many` keeps both slots busy over an iterator of batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.engine.cuda import current_target, import_pycuda, import_tensorrt
from mfpi_deploy.engine.manifest import ENGINE_NAME, EngineFolder, EngineMismatchError, check_engine_target
from mfpi_deploy.engine.profiles import buffer_bytes, io_shapes, pick_profile
from mfpi_deploy.errors import MfpiError


@dataclass
class _Slot:
    context: Any
    stream: Any
    event: Any
    host: dict[str, np.ndarray]
    device: dict[str, Any]
    shape: tuple[int, ...] | None = None  # output shape of the batch in flight


class TrtBackend(Backend):
    """Runs model.engine of an engine folder on one GPU."""

    kind = BackendKind.TRT

    def __init__(self, folder: str | Path, *, device: int = 0, slots: int = 2) -> None:
        engines = EngineFolder(folder)
        self.folder = engines.path
        if not engines.has("engine"):
            raise MfpiError(f"{self.folder}: no {ENGINE_NAME} in folder (export with --trt)")
        check_engine_target(engines.manifest.gpu, current_target(device), folder=self.folder)
        plan = engines.artifact("engine").read_bytes()
        trt, cuda = import_tensorrt(), import_pycuda()
        self._cuda = cuda
        self.spec = engines.spec("engine", limited=True)
        self._ctx = cuda.Device(device).retain_primary_context()
        self._ctx.push()
        try:
            logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(logger)
            self.engine = self._runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise EngineMismatchError(f"{self.folder}: TensorRT could not load {ENGINE_NAME}; rebuild it")
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            self.outputs = [n for n in names if n not in self.inputs]
            sizes = buffer_bytes(self.spec, self.spec.profiles)
            self._slots = [self._make_slot(sizes) for _ in range(max(1, slots))]
        finally:
            self._ctx.pop()
        self._next = 0

    def _make_slot(self, sizes: dict[str, int]) -> _Slot:
        cuda = self._cuda
        dtypes = {"tiles": np.uint8, "planes": np.uint8, "dpm": np.float32}
        host = {k: cuda.pagelocked_empty(n // np.dtype(dtypes[k]).itemsize, dtypes[k]) for k, n in sizes.items()}
        device = {k: cuda.mem_alloc(n) for k, n in sizes.items()}
        context = self.engine.create_execution_context()
        for name in self.inputs + self.outputs:  # the names export.onnx_export gives the graph's I/O
            if name not in device:
                raise MfpiError(f"{self.folder}: engine tensor {name!r} is not one of {sorted(device)}")
            context.set_tensor_address(name, int(device[name]))
        return _Slot(context, cuda.Stream(), cuda.Event(), host, device)

    def submit(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> int:
        """Start a batch on the next free slot (waiting for it if both are busy); returns a ticket."""
        self.spec.check_batch(tiles)
        if self.spec.needs_dpm and dpm is None:
            raise MfpiError("Deep-Z needs a DPM value per tile")
        index = self._next
        self._next = (self._next + 1) % len(self._slots)
        slot = self._slots[index]
        if slot.shape is not None:
            raise MfpiError("both TensorRT slots are busy: collect() a batch before submitting another")
        n, h, w, _ = tiles.shape
        shapes = io_shapes(self.spec, n, h, w)
        cuda = self._cuda
        self._ctx.push()
        try:
            profile = pick_profile(self.spec.profiles, h, w, n)
            if slot.context.active_optimization_profile != profile:
                slot.context.set_optimization_profile_async(profile, slot.stream.handle)
            host_in = slot.host["tiles"][: tiles.size]
            host_in[:] = tiles.reshape(-1)
            slot.context.set_input_shape("tiles", shapes["tiles"])
            cuda.memcpy_htod_async(slot.device["tiles"], host_in, slot.stream)
            if self.spec.needs_dpm:
                host_dpm = slot.host["dpm"][:n]
                host_dpm[:] = np.asarray(dpm, np.float32).reshape(n)
                slot.context.set_input_shape("dpm", shapes["dpm"])
                cuda.memcpy_htod_async(slot.device["dpm"], host_dpm, slot.stream)
            if not slot.context.execute_async_v3(stream_handle=slot.stream.handle):
                raise MfpiError("TensorRT failed to enqueue the batch")
            size = int(np.prod(shapes["planes"]))
            cuda.memcpy_dtoh_async(slot.host["planes"][:size], slot.device["planes"], slot.stream)
            slot.event.record(slot.stream)
        finally:
            self._ctx.pop()
        slot.shape = shapes["planes"]
        return index

    def collect(self, ticket: int) -> np.ndarray:
        """Wait for the batch of `ticket` and return its planes (N, Z, sH, sW, C) uint8."""
        slot = self._slots[ticket]
        if slot.shape is None:
            raise MfpiError(f"no batch in flight on slot {ticket}")
        self._ctx.push()
        try:
            slot.event.synchronize()
        finally:
            self._ctx.pop()
        shape, slot.shape = slot.shape, None
        out = slot.host["planes"][: int(np.prod(shape))].reshape(shape).copy()
        return out[:, None] if self.spec.needs_dpm else out

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        return self.collect(self.submit(tiles, dpm))

    def in_flight(self) -> int:
        return len(self._slots)

    def close(self) -> None:
        if not getattr(self, "_slots", None):
            return
        self._ctx.push()
        try:
            for slot in self._slots:
                if slot.shape is not None:
                    slot.event.synchronize()
                for mem in slot.device.values():
                    mem.free()
        finally:
            self._ctx.pop()
        self._slots = []
        self.engine = None
