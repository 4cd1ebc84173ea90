"""The engine on a worker: sessions and engines do not pickle, so tasks carry an EngineRef (backend
kind, engine path, threads, streams) and each process opens the engine once and keeps it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mfpi_deploy.backends.base import Backend, BackendKind, EngineFacts
from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.errors import MfpiError


@dataclass(frozen=True)
class EngineRef:
    """How a process (a worker, or mfpi-run itself) opens the engine: `open`."""

    backend: str  # a BackendKind value (auto included: each worker picks for its own machine)
    source: str  # engine folder (or checkpoint for torch), a path every worker can read
    threads: int | None = None  # CPU threads of the engine (onnxruntime intra-op, torch); None: the runtime's
    engine_id: str = ""  # what a resume must match (path + manifest hash)
    precision: str | None = None  # engine variant (fp32, fp16, bf16, int8); None: the backend's default
    streams: int | None = None  # OpenVINO's streams (tiles computed side by side); None: one per batch in flight

    def __post_init__(self) -> None:
        kind = BackendKind.parse(self.backend)
        if self.threads is not None and self.threads < 1:
            raise MfpiError(f"threads must be >= 1, got {self.threads}")
        check_streams(kind, self.streams)

    def open(self, log: Callable[[str], None] = print) -> Backend:
        """The engine, opened in this process (the caller closes it)."""
        return open_backend(
            self.backend, self.source, threads=self.threads, log=log, precision=self.precision, streams=self.streams
        )


def check_streams(kind: BackendKind, streams: int | None) -> None:
    """Refuse a stream count below one, or one given to a backend that has no streams (OpenVINO
    has them; `auto` may pick it)."""
    if streams is None:
        return
    if streams < 1:
        raise MfpiError(f"--streams must be at least 1, got {streams}")
    if kind not in (BackendKind.OPENVINO, BackendKind.AUTO):
        raise MfpiError(f"--streams sets OpenVINO's streams; backend {kind.value} has none")


_backends: dict[EngineRef, Backend] = {}
_open_lock = threading.Lock()
# One task at a time drives this process's engine (a worker with several threads runs tasks
# side by side; the engine's own threads already use the cores, and TensorRT contexts are not
# thread-safe).
ENGINE_LOCK = threading.Lock()


def worker_backend(ref: EngineRef, log: Callable[[str], None] = print) -> Backend:
    """This process's backend for `ref`, opened on first use and kept until `close_backends`."""
    with _open_lock:
        backend = _backends.get(ref)
        if backend is None:
            backend = ref.open(log)
            _backends[ref] = backend
        return backend


def engine_facts(ref: EngineRef) -> EngineFacts:
    """Kind, spec and description of the engine as a worker opens it (what a client plans with)."""
    return worker_backend(ref, log=lambda message: None).facts()


def close_backends() -> None:
    """Free every engine this process opened (device memory included)."""
    with _open_lock:
        while _backends:
            _, backend = _backends.popitem()
            backend.close()


def process_name() -> str:
    """host:pid of this process (the worker column of a report for in-process runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"
