"""The whole benchmark: every chosen backend in each precision it runs, all models and precisions of a backend
interleaved, one report."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Hashable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mfpi_deploy.backends import select
from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.bench import engines, runner
from mfpi_deploy.bench.engines import EngineRequest, Run
from mfpi_deploy.bench.machine import describe_machine
from mfpi_deploy.bench.report import BenchReport, MatmulReference, ModelResult, Ratio, paired_ratios, summarize
from mfpi_deploy.bench.workload import BenchModel, Workload, make_workloads
from mfpi_deploy.errors import MfpiError

MATMUL = "matmul"
NOTES = (
    "MFPINet (both forms), Deep-Z, in every precision of a backend, and the matmul reference were timed in "
    "alternating order within each round, so load from other processes affects them alike; per-round ratios are "
    "more stable than any latency",
    "Peak RSS is the whole process's resident memory while that model ran (every engine of the backend loaded, plus "
    "memory the process kept from exporting engines in-process); weights are random, which does not change timing",
    "MFPINet residual is the same network plus an in-graph bicubic upsampling of the input (a fixed depthwise "
    "convolution, counted in its GFLOPs) added to every plane",
)


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. `width` (tests only) narrows every network; None = the paper's widths."""

    tile: int = 384  # the paper's
    batch: int = 1
    runs: int = 10
    warmup: int = 2
    threads: int | None = None
    quick: bool = False
    fp16: bool = False
    planes: int = 11
    channels: int = 3
    width: int | None = None
    matmul_size: int = 2048
    pipeline: bool = False
    precisions: tuple[str, ...] | None = None  # ort-cpu and openvino: the variants to run (None: all they run)

    @property
    def out_tile(self) -> int:
        return 2 * self.tile


def quick_settings(**overrides: object) -> BenchSettings:
    """The --quick defaults (small tile, few runs), with explicit options taking precedence."""
    base = {"tile": 128, "runs": 3, "warmup": 1, "quick": True, "matmul_size": 1024}
    return BenchSettings(**{**base, **{k: v for k, v in overrides.items() if v is not None}})  # type: ignore[arg-type]


def _precisions(kind: BackendKind) -> str:
    return ", ".join(p.value for p in select.KIND_PRECISIONS[kind])


def run_benchmark(
    settings: BenchSettings,
    backends: list[BackendKind],
    *,
    command: str,
    skipped: dict[str, str] | None = None,
    work_dir: Path | None = None,
    notes: tuple[str, ...] = (),
    strict: bool = True,
    log: Callable[[str], None] = print,
) -> BenchReport:
    """Measure every model on every backend in `backends` and return the report. `strict`: a backend whose
    engines cannot be opened is an error (named by the user); else it is skipped and the others run (`auto`)."""
    plans = {kind: engines.planned(kind, settings.precisions, settings.fp16) for kind in backends}
    asked = settings.precisions or ()
    if not any(plans.values()):
        runs = "; ".join(f"{k.value} runs {_precisions(k)}" for k in backends)
        raise MfpiError(f"no backend runs --precisions {','.join(asked)} ({runs})")
    s = settings
    workloads = make_workloads(s.tile, s.batch, channels=s.channels, planes=s.planes, width=s.width)
    report = BenchReport(
        command=command,
        created_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        settings={**asdict(settings), "out_tile": settings.out_tile},
        machine=describe_machine(),
        quick=settings.quick,
        skipped=dict(skipped or {}),
    )

    def skip(kind: BackendKind, reason: str) -> None:
        report.skipped[kind.value] = reason
        log(f"skipping {kind.value}: {reason}")

    with tempfile.TemporaryDirectory(prefix="mfpi-bench-") as tmp:
        root = Path(work_dir or tmp)
        sources = {m: engines.random_checkpoint(w, root) for m, w in workloads.items()}
        variants = engines.export_variants(backends, settings.precisions)
        for kind in backends:
            if not plans[kind]:
                skip(kind, f"it runs {_precisions(kind)}; --precisions asked for {', '.join(asked)}")
                continue
            log(f"{kind.value}: opening engines ({', '.join(p.value for p in plans[kind])})")
            fp16 = settings.fp16 and kind in engines.GPU_KINDS
            cpu_variants = variants if kind in engines.VARIANT_KINDS else frozenset()
            requests = {
                m: EngineRequest(kind, sources[m], w.in_tile, w.batch, fp16, settings.threads, variants=cpu_variants)
                for m, w in workloads.items()
            }
            with ExitStack() as stack:  # closes every engine opened, also when one fails to open
                try:
                    opened = engines.open_variants(report, kind, plans[kind], requests, stack, root, log)
                except MfpiError as exc:
                    if strict:
                        raise
                    report.variants = [v for v in report.variants if v.backend != kind.value]
                    skip(kind, f"its engines could not be opened ({exc})")
                    continue
                if not opened:
                    continue
                _measure(report, kind, opened, workloads, settings, log)
                if settings.pipeline:
                    first = next(run.precision for run in opened)
                    log(f"{kind.value}: pipeline mode (run_slide on a generated slide, {first.value})")
                    try:
                        mfpinet = opened[Run(BenchModel.MFPINET, first)]
                        report.pipeline.append(runner.measure_pipeline(mfpinet, s.tile, s.batch, root, log))
                    except MfpiError as exc:
                        report.notes.append(f"pipeline mode on {kind.value} did not run: {exc}")
    report.notes.extend(notes)
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        report.notes.append(f"load average at end: {load} ({report.machine.logical_cores} logical cores)")
    report.notes.extend(NOTES)
    if settings.width is not None:
        report.notes.append(f"networks narrowed to width {settings.width} (test setting, not the paper's networks)")
    return report


def _measure(
    report: BenchReport,
    kind: BackendKind,
    opened: dict[Run, Backend],
    workloads: dict[BenchModel, Workload],
    settings: BenchSettings,
    log: Callable[[str], None],
) -> None:
    """Time every network in every precision opened, and the matmul reference, in interleaved rounds on one
    backend; add the rows to `report`."""
    device = engines.engine_device(kind)
    # open_engine checked each engine's output shape; every precision of a network gets the same input
    inputs = {m: w.sample_input(seed=i) for i, (m, w) in enumerate(workloads.items())}
    runners: dict[Hashable, Callable[[], object]] = {
        run: runner.stack_runner(backend, workloads[run.model], inputs[run.model]) for run, backend in opened.items()
    }
    runners[MATMUL] = runner.matmul_runner(settings.matmul_size, device, settings.threads)
    log(
        f"{kind.value}: {settings.runs} rounds after {settings.warmup} warm-up "
        f"({', '.join(run.label for run in opened)} stacks, {settings.matmul_size}x{settings.matmul_size} matmul)"
    )
    probe = runner.cuda_used_bytes if device == "cuda" and torch.cuda.is_available() else None
    with runner.PeakSampler(device_probe=probe) as sampler:
        times = runner.measure_interleaved(runners, settings.runs, settings.warmup, sampler, log)
    threads = (settings.threads or torch.get_num_threads()) if device == "cpu" else None
    matmul = MatmulReference(device, settings.matmul_size, threads, summarize(times[MATMUL]), backend=kind.value)
    report.matmul.append(matmul)
    for run in opened:
        report.results.append(
            ModelResult(
                backend=kind.value,
                device=device,
                precision=run.precision.value,
                workload=workloads[run.model],
                seconds=summarize(times[run]),
                peak_rss_bytes=sampler.host_peak.get(run, 0),
                peak_device_bytes=sampler.device_peak.get(run, 0) if probe else None,
                matmul_gflops_per_s=matmul.gflops_per_s,
            )
        )
    for precision in dict.fromkeys(run.precision for run in opened):
        paper = times[Run(BenchModel.MFPINET, precision)]
        for model, found in ((BenchModel.DEEPZ, report.speedups), (BenchModel.MFPINET_RESIDUAL, report.residual)):
            other = times[Run(model, precision)]
            of_medians = summarize(other).median / summarize(paper).median
            found.append(Ratio(kind.value, summarize(paired_ratios(other, paper)), of_medians, precision.value))
