"""Which backends this machine can run, and engines of both networks for each backend.

By default the networks get random weights at the paper's architecture (timing does not
depend on weights); exported backends (onnxruntime, TensorRT) get an engine folder exported
from that checkpoint by `mfpi_deploy.export`.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.bench.workload import BenchModel, Workload
from mfpi_deploy.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from mfpi_deploy.checkpoint.card import Provenance
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import create_model

# The order `auto` lists them in: fastest first, as open_backend's auto does.
ALL_BACKENDS: tuple[BackendKind, ...] = (BackendKind.TRT, BackendKind.ORT_CUDA, BackendKind.ORT_CPU,
                                         BackendKind.TORCH)
EXPORTED = {BackendKind.TRT, BackendKind.ORT_CUDA, BackendKind.ORT_CPU}


@dataclass(frozen=True)
class Availability:
    kind: BackendKind
    available: bool
    reason: str = ""


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _export_missing() -> str:
    return "" if _has_module("mfpi_deploy.export.api") else "the export module (mfpi_deploy.export) is not in this build"


def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover
        return 0


def probe(kind: BackendKind) -> Availability:
    """Whether `kind` can run here, and if not, why (one short phrase)."""
    if kind is BackendKind.TORCH:
        return Availability(kind, True)
    if kind is BackendKind.TRT:
        for module, package in (("tensorrt", "tensorrt"), ("pycuda", "pycuda")):
            if not _has_module(module):
                return Availability(kind, False, f"{package} is not installed (pip install '.[trt]')")
        if _cuda_count() == 0 and not _nvidia_device_present():
            return Availability(kind, False, "no NVIDIA GPU found")
    elif kind in (BackendKind.ORT_CUDA, BackendKind.ORT_CPU):
        if not _has_module("onnxruntime"):
            return Availability(kind, False, "onnxruntime is not installed")
        if kind is BackendKind.ORT_CUDA:
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return Availability(kind, False, "onnxruntime has no CUDAExecutionProvider "
                                                 "(CPU build; install onnxruntime-gpu)")
    missing = _export_missing()
    if missing:
        return Availability(kind, False, missing)
    return Availability(kind, True)


def _nvidia_device_present() -> bool:
    return Path("/dev/nvidia0").exists()


def select_backends(requested: tuple[str, ...],
                    probe_fn: Callable[[BackendKind], Availability] = probe
                    ) -> tuple[list[BackendKind], list[Availability]]:
    """The backends to run and the ones skipped (with reasons).

    Empty or `auto`: every available backend, the others reported as skipped. A backend named
    explicitly that cannot run is an MfpiError: the user asked for something impossible.
    """
    kinds = [BackendKind.parse(r) for r in requested] or [BackendKind.AUTO]
    if BackendKind.AUTO in kinds and len(kinds) > 1:
        raise MfpiError("--backend auto cannot be combined with named backends")
    if kinds == [BackendKind.AUTO]:
        found = [probe_fn(k) for k in ALL_BACKENDS]
        return [a.kind for a in found if a.available], [a for a in found if not a.available]
    chosen: list[BackendKind] = []
    for kind in kinds:
        if kind in chosen:
            continue
        a = probe_fn(kind)
        if not a.available:
            raise MfpiError(f"backend {kind.value} is not available here: {a.reason}")
        chosen.append(kind)
    return chosen, []


def random_checkpoint(model: BenchModel, workload: Workload, width: int | None, folder: Path) -> Path:
    """Save a random-weight checkpoint of `model` at the architecture the workload measures."""
    if model is BenchModel.MFPINET:
        config = {"in_channels": workload.channels, "planes": workload.planes}
    else:
        config = {"in_channels": workload.channels + 1}
    if width is not None:
        config["width"] = width
    net = create_model(model.value, **config).eval()
    card = ModelCard(architecture=model.value, config=config,
                     provenance=Provenance(source="random weights (mfpi-bench; timing only)"))
    path = folder / f"{model.value}-random"
    save_checkpoint(net, card, path, overwrite=True)
    return path


def is_engine_folder(path: Path) -> bool:
    """An exported engine folder (see mfpi_deploy.backends.select), as opposed to a checkpoint."""
    from mfpi_deploy.backends.select import is_engine_folder as exported

    return exported(path)


@dataclass(frozen=True)
class EngineRequest:
    """How to build or find the engine of one network for one backend."""

    kind: BackendKind
    source: Path  # a checkpoint or an exported engine folder
    tile: int  # input tile side the engine runs at
    batch: int
    fp16: bool = False
    threads: int | None = None


def engine_folder(req: EngineRequest, work_dir: Path, log: Callable[[str], None]) -> Path:
    """An engine folder for `req`: the source itself if it is one, else an export into work_dir."""
    if is_engine_folder(req.source):
        return req.source
    export_api = importlib.import_module("mfpi_deploy.export.api")
    precision = "fp16" if req.fp16 else "fp32"
    target = work_dir / f"{req.source.name}-{req.kind.value}-{precision}-{req.tile}-b{req.batch}"
    if is_engine_folder(target):
        return target
    log(f"exporting {req.source.name} for {req.kind.value} ({precision}, tile {req.tile}, batch {req.batch})")
    wanted = {"fp16": req.fp16, "trt": req.kind is BackendKind.TRT, "tiles": (req.tile,),
              "batches": (req.batch,), "threads": req.threads}
    known = {f.name for f in dataclasses.fields(export_api.ExportOptions)}
    options = export_api.ExportOptions(**{k: v for k, v in wanted.items() if k in known})
    return Path(export_api.export_model(str(req.source), target, options, log=log))


def open_engine(req: EngineRequest, work_dir: Path, log: Callable[[str], None]) -> Backend:
    """Open the engine of `req` on its backend (torch runs the checkpoint on CUDA if present)."""
    if req.kind is BackendKind.TORCH:
        from mfpi_deploy.backends.torch_backend import TorchBackend

        device = "cuda" if _cuda_count() else "cpu"
        return TorchBackend(load_checkpoint(req.source), device=device, threads=req.threads)
    from mfpi_deploy.backends.select import open_backend

    folder = engine_folder(req, work_dir, log)
    return open_backend(req.kind, folder, threads=req.threads, log=log)


def backend_device(backend: Backend) -> str:
    """'cpu' or 'cuda' (the device the engine computes on)."""
    device = getattr(backend, "device", None)
    if device is not None:
        return str(getattr(device, "type", device))
    return "cuda" if backend.kind in (BackendKind.TRT, BackendKind.ORT_CUDA) else "cpu"

