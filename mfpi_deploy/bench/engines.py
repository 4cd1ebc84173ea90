"""Which backends mfpi-bench runs (`mfpi_deploy.backends.select`'s probe), and each network's engine on them:
random weights (timing does not depend on them), exported by `mfpi_deploy.export` for onnxruntime/TensorRT."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from mfpi_deploy.backends import select
from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.bench.workload import Workload
from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
from mfpi_deploy.checkpoint.card import Provenance
from mfpi_deploy.engine.manifest import is_engine_folder
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.api import ExportOptions, export_model
from mfpi_deploy.models import create_model

BENCH_ORDER = (*select.AUTO_ORDER, BackendKind.TORCH)  # what `auto` runs, fastest first


def select_backends(requested: tuple[str, ...]) -> tuple[list[BackendKind], dict[str, str]]:
    """The backends to run and the skipped ones' reasons: every available one for `auto` (or none named);
    a named backend that cannot run is an MfpiError, since the user asked for something impossible."""
    kinds = list(dict.fromkeys(BackendKind.parse(r) for r in requested))
    if BackendKind.AUTO in kinds and len(kinds) > 1:
        raise MfpiError("--backend auto cannot be combined with named backends")
    if kinds in ([], [BackendKind.AUTO]):
        reasons = {kind: select.runtime_missing(kind) for kind in BENCH_ORDER}
        return [k for k, r in reasons.items() if not r], {k.value: r for k, r in reasons.items() if r}
    for kind in kinds:
        if reason := select.runtime_missing(kind):
            raise MfpiError(f"backend {kind.value} is not available here: {reason}")
    return kinds, {}


def random_checkpoint(workload: Workload, folder: Path) -> Path:
    """Save a random-weight checkpoint of the network the workload measures."""
    arch = workload.model.architecture
    card = ModelCard(architecture=arch, config=dict(workload.config),
                     provenance=Provenance(source="random weights (mfpi-bench; timing only)"))
    path = folder / f"{workload.model.value}-random"
    save_checkpoint(create_model(arch, **workload.config).eval(), card, path, overwrite=True)
    return path


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
    """An engine folder for `req`: the source itself if it is one, else an export into work_dir (reused)."""
    if is_engine_folder(req.source):
        return req.source
    precision = "fp16" if req.fp16 else "fp32"
    target = work_dir / f"{req.source.name}-{req.kind.value}-{precision}-{req.tile}-b{req.batch}"
    if is_engine_folder(target):
        return target
    log(f"exporting {req.source.name} for {req.kind.value} ({precision}, tile {req.tile}, batch {req.batch})")
    options = ExportOptions(fp16=req.fp16, trt=req.kind is BackendKind.TRT, tiles=(req.tile,),
                            batches=(req.batch,), threads=req.threads)
    return export_model(req.source, target, options, log=log)


def engine_device(kind: BackendKind) -> str:
    """'cpu' or 'cuda': the device `kind` computes on (torch: CUDA when present)."""
    cpu = kind is BackendKind.ORT_CPU or (kind is BackendKind.TORCH and not torch.cuda.is_available())
    return "cpu" if cpu else "cuda"


def open_engine(req: EngineRequest, work_dir: Path, log: Callable[[str], None]) -> Backend:
    """Open the engine of `req` on its backend (torch runs the checkpoint itself)."""
    source = req.source if req.kind is BackendKind.TORCH else engine_folder(req, work_dir, log)
    return select.open_backend(req.kind, source, threads=req.threads, device=engine_device(req.kind), log=log)
