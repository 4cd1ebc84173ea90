"""Which backends and precision variants mfpi-bench runs, and each network's engine: random weights (timing does not
depend on them) exported by mfpi_deploy.export; a variant failing its accuracy gate is left out, its figure kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mfpi_deploy.backends import select
from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.backends.torch_backend import default_device
from mfpi_deploy.bench.report import GATE_FAILED, MEASURED, SKIPPED, BenchReport, Variant
from mfpi_deploy.bench.workload import BenchModel, Workload
from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
from mfpi_deploy.checkpoint.card import Provenance
from mfpi_deploy.engine.manifest import GateFigure, Manifest, is_engine_folder
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.accuracy import GateError
from mfpi_deploy.export.api import ExportOptions, export_model
from mfpi_deploy.fileio import write_atomic
from mfpi_deploy.models import create_model

BENCH_ORDER = (*select.AUTO_ORDER, BackendKind.TORCH)  # what `auto` runs, fastest first
# CPU backends whose engine folders hold precision variants; the others run one engine each (GPU: --fp16).
VARIANT_KINDS = (BackendKind.ORT_CPU, BackendKind.OPENVINO)
GPU_KINDS = (BackendKind.TRT, BackendKind.ORT_CUDA)


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


def parse_precisions(text: str | None) -> tuple[str, ...] | None:
    """'fp32,int8,bf16' -> ('fp32', 'int8', 'bf16') in that order, duplicates dropped; None: every one."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise MfpiError("--precisions: name at least one of fp32, fp16, bf16, int8 (comma-separated)")
    return tuple(dict.fromkeys(Precision.parse(n).value for n in names))


def planned(kind: BackendKind, asked: tuple[str, ...] | None, fp16: bool = False) -> tuple[Precision, ...]:
    """The precisions `kind` is measured in: on ort-cpu and openvino every variant it runs (or those of `asked`
    it runs); on TensorRT / onnxruntime CUDA fp16 with `fp16`, else fp32; torch fp32."""
    if kind in VARIANT_KINDS:
        return tuple(p for p in select.KIND_PRECISIONS[kind] if asked is None or p.value in asked)
    return (Precision.FP16 if fp16 and kind in GPU_KINDS else Precision.FP32,)


def not_here(kind: BackendKind, precision: Precision) -> str | None:
    """Why this machine cannot run `precision` on `kind` whatever the engine (bf16 without bf16 arithmetic)."""
    if kind is BackendKind.OPENVINO and precision is Precision.BF16:
        from mfpi_deploy.backends import openvino_backend

        return openvino_backend.no_bf16_reason()
    return None


def export_variants(kinds: list[BackendKind], asked: tuple[str, ...] | None) -> frozenset[Precision]:
    """The variants besides fp32 to export for the CPU backends in `kinds` (one folder per network serves
    them all): every one some backend will run here."""
    cpu_kinds = [kind for kind in kinds if kind in VARIANT_KINDS]
    return frozenset(
        p for k in cpu_kinds for p in planned(k, asked) if p is not Precision.FP32 and not_here(k, p) is None
    )


def random_checkpoint(workload: Workload, folder: Path) -> Path:
    """Save a random-weight checkpoint of the network the workload measures."""
    arch, config = workload.model.architecture, dict(workload.config)
    card = ModelCard(arch, config, provenance=Provenance(source="random weights (mfpi-bench; timing only)"))
    path = folder / f"{workload.model.value}-random"
    save_checkpoint(create_model(arch, **config).eval(), card, path, overwrite=True)
    return path


@dataclass(frozen=True)
class EngineRequest:
    """How to build or find the engine of one network for one backend, and which variant of it to open."""

    kind: BackendKind
    source: Path  # a checkpoint or an exported engine folder
    tile: int  # input tile side the engine runs at
    batch: int
    fp16: bool = False  # GPU backends: the fp16 engine
    threads: int | None = None
    precision: Precision | None = None  # the variant to open (None: the backend's default)
    variants: frozenset[Precision] = frozenset()  # CPU variants to export beside fp32 (fp16, int8, bf16)


def _folder_tag(req: EngineRequest) -> str:
    if req.variants:  # one folder serves every CPU backend
        return "cpu-" + "-".join(p.value for p in Precision if p is Precision.FP32 or p in req.variants)
    return f"{req.kind.value}-{'fp16' if req.fp16 else 'fp32'}"


def failed_gates_path(folder: Path) -> Path:
    """Where the variants left out of an exported folder for failing their gates are recorded (beside it)."""
    return folder.with_name(folder.name + ".failed-gates.json")


def engine_folder(req: EngineRequest, work_dir: Path, log: Callable[[str], None]) -> Path:
    """An engine folder for `req`: the source itself if it is one, else an export into work_dir (reused).
    A variant failing its accuracy gate is left out (exported again without it) and recorded beside the folder."""
    if is_engine_folder(req.source):
        return req.source
    target = work_dir / f"{req.source.name}-{_folder_tag(req)}-{req.tile}-b{req.batch}"
    if is_engine_folder(target):
        return target
    variants, failed = set(req.variants), {}
    while True:
        log(
            f"exporting {req.source.name} for {req.kind.value} ({_folder_tag(req)}, tile {req.tile}, "
            f"batch {req.batch})" + (f", without {', '.join(sorted(failed))}" if failed else "")
        )
        options = ExportOptions(
            fp16=req.fp16 or Precision.FP16 in variants,
            trt=req.kind is BackendKind.TRT,
            int8=Precision.INT8 in variants,
            bf16=Precision.BF16 in variants,
            tiles=(req.tile,),
            batches=(req.batch,),
            threads=req.threads,
        )
        try:
            export_model(req.source, target, options, log=log)
            break
        except GateError as exc:
            if Precision.parse(exc.precision) not in variants:
                raise
            log(f"{req.source.name}: {exc}")
            variants.discard(Precision.parse(exc.precision))
            figure = GateFigure(exc.precision, "", exc.min_psnr_db, exc.threshold_db, "failed at export")
            failed[exc.precision] = asdict(figure)
    if req.variants:
        write_atomic(failed_gates_path(target), json.dumps(failed, indent=2) + "\n")
    return target


def variant_gate(kind: BackendKind, folder: Path | None, precision: Precision) -> GateFigure | None:
    """The accuracy gate of `precision` on `kind`'s runtime: the figure of a failure at export, else the
    manifest's; None for fp32 (the reference) and for backends without a gate (TensorRT, torch)."""
    runtime = select.RUNTIMES.get(kind)
    if precision is Precision.FP32 or folder is None or runtime is None:
        return None
    failures = failed_gates_path(folder)
    if failures.is_file() and precision.value in (failed := json.loads(failures.read_text())):
        return GateFigure(**failed[precision.value])
    return Manifest.read(folder).gate(precision.value, runtime)


def engine_device(kind: BackendKind) -> str:
    """'cpu' or 'cuda': the device `kind` computes on (torch: CUDA when present)."""
    if kind is BackendKind.TORCH:
        return default_device()
    return "cpu" if kind in VARIANT_KINDS else "cuda"


def open_engine(req: EngineRequest, work_dir: Path, log: Callable[[str], None]) -> Backend:
    """Open the engine of `req` on its backend, in `req.precision` (torch runs the checkpoint itself)."""
    source = req.source if req.kind is BackendKind.TORCH else engine_folder(req, work_dir, log)
    return select.open_backend(
        req.kind,
        source,
        threads=req.threads,
        device=engine_device(req.kind),
        log=log,
        precision=req.precision,
        per_plane=True,
        streams=1,  # latency of one stack: OpenVINO's single stream on every thread
    )


@dataclass(frozen=True)
class Run:
    """What one runner of a backend's interleaved rounds computes: one network's stack in one precision."""

    model: BenchModel
    precision: Precision

    @property
    def label(self) -> str:
        return f"{self.model.label} {self.precision.value}"


def open_variants(
    report: BenchReport,
    kind: BackendKind,
    precisions: tuple[Precision, ...],
    requests: dict[BenchModel, EngineRequest],
    opened: ExitStack,
    root: Path,
    log: Callable[[str], None],
) -> dict[Run, Backend]:
    """Every network's engine in each of `precisions` on `kind`, entered into `opened`; a precision that cannot run
    here, or whose gate failed for some network, is a row of `report.variants` saying so (with the figures)."""
    engines: dict[Run, Backend] = {}
    for precision in precisions:
        if reason := not_here(kind, precision):
            report.variants.append(Variant(kind.value, precision.value, SKIPPED, reason))
            log(f"{kind.value} {precision.value}: skipped ({reason})")
            continue
        reqs = {m: replace(r, precision=precision) for m, r in requests.items()}
        folders = {m: None if kind is BackendKind.TORCH else engine_folder(r, root, log) for m, r in reqs.items()}
        gates = {m: g for m, folder in folders.items() if (g := variant_gate(kind, folder, precision)) is not None}
        failed = [f"{m.label} {g.min_psnr_db:.1f} dB < {g.threshold_db} dB" for m, g in gates.items() if not g.passed]
        checked = folders if kind in VARIANT_KINDS else {}  # torch has no folder, the GPU kinds no variants
        why = [f"{m.label}: {r}" for m, f in checked.items() if (r := select.unavailable_reason(kind, f, precision))]
        status = GATE_FAILED if failed else SKIPPED if why else MEASURED
        reason = "; ".join(failed or why)
        row = Variant(kind.value, precision.value, status, reason, {m.value: g for m, g in gates.items()})
        report.variants.append(row)
        if row.status != MEASURED:
            log(f"{kind.value} {precision.value}: {row.status} ({row.reason})")
            continue
        for m, r in reqs.items():
            engines[Run(m, precision)] = opened.enter_context(open_engine(r, root, log))
    return engines
