"""The whole benchmark: every chosen backend, all models interleaved, one report."""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Hashable

import torch

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.bench.engines import EngineRequest, engine_device, open_engine, random_checkpoint
from mfpi_deploy.bench.machine import describe_machine
from mfpi_deploy.bench.report import BenchReport, MatmulReference, ModelResult, Ratio, paired_ratios, summarize
from mfpi_deploy.bench.runner import PeakSampler, cuda_used_bytes, matmul_runner, measure_interleaved, stack_runner
from mfpi_deploy.bench.slide_run import measure_pipeline
from mfpi_deploy.bench.workload import BenchModel, Workload, make_workloads
from mfpi_deploy.errors import MfpiError

MATMUL = "matmul"
NOTES = (
    "MFPINet (both forms), Deep-Z and the matmul reference were timed in alternating order within each round, so "
    "load from other processes affects them alike; per-round ratios are more stable than any latency",
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

    @property
    def out_tile(self) -> int:
        return 2 * self.tile


def quick_settings(**overrides: object) -> BenchSettings:
    """The --quick defaults (small tile, few runs), with explicit options taking precedence."""
    base = {"tile": 128, "runs": 3, "warmup": 1, "quick": True, "matmul_size": 1024}
    return BenchSettings(**{**base, **{k: v for k, v in overrides.items() if v is not None}})  # type: ignore[arg-type]


def run_benchmark(settings: BenchSettings, backends: list[BackendKind], *, command: str,
                  skipped: dict[str, str] | None = None, work_dir: Path | None = None,
                  notes: tuple[str, ...] = (), strict: bool = True,
                  log: Callable[[str], None] = print) -> BenchReport:
    """Measure every model on every backend in `backends` and return the report. `strict`: a backend whose
    engines cannot be opened is an error (named by the user); else it is skipped and the others run (`auto`)."""
    workloads = make_workloads(settings.tile, settings.batch, channels=settings.channels, planes=settings.planes,
                               width=settings.width)
    report = BenchReport(
        command=command, created_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        settings={**asdict(settings), "out_tile": settings.out_tile}, machine=describe_machine(),
        quick=settings.quick, skipped=dict(skipped or {}),
    )
    with tempfile.TemporaryDirectory(prefix="mfpi-bench-") as tmp:
        root = Path(work_dir or tmp)
        sources = {m: random_checkpoint(w, root) for m, w in workloads.items()}
        for kind in backends:
            log(f"{kind.value}: opening engines")
            fp16 = settings.fp16 and kind in (BackendKind.TRT, BackendKind.ORT_CUDA)
            with ExitStack() as opened:  # closes every engine opened, also when one fails to open
                try:
                    engines = {m: opened.enter_context(open_engine(
                        EngineRequest(kind, sources[m], w.in_tile, w.batch, fp16, settings.threads), root, log))
                        for m, w in workloads.items()}
                except MfpiError as exc:
                    if strict:
                        raise
                    report.skipped[kind.value] = f"its engines could not be opened ({exc})"
                    log(f"skipping {kind.value}: {report.skipped[kind.value]}")
                    continue
                _measure(report, kind, engines, workloads, settings, log)
                if settings.pipeline:
                    log(f"{kind.value}: pipeline mode (run_slide on a generated slide)")
                    try:
                        report.pipeline.append(measure_pipeline(engines[BenchModel.MFPINET], settings.tile,
                                                                settings.batch, root, log))
                    except MfpiError as exc:
                        report.notes.append(f"pipeline mode on {kind.value} did not run: {exc}")
    report.notes.extend(notes)
    if hasattr(os, "getloadavg"):
        report.notes.append("load average at end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
                            + f" ({report.machine.logical_cores} logical cores)")
    report.notes.extend(NOTES)
    if settings.width is not None:
        report.notes.append(f"networks narrowed to width {settings.width} (test setting, not the paper's networks)")
    return report


def _measure(report: BenchReport, kind: BackendKind, engines: dict[BenchModel, Backend],
             workloads: dict[BenchModel, Workload], settings: BenchSettings, log: Callable[[str], None]) -> None:
    """Time every model and the matmul reference in interleaved rounds on one backend; add the rows to `report`."""
    device = engine_device(kind)
    # open_engine checked each engine's output shape
    runners: dict[Hashable, Callable[[], object]] = {
        m: stack_runner(engines[m], w, w.sample_input(seed=i)) for i, (m, w) in enumerate(workloads.items())}
    runners[MATMUL] = matmul_runner(settings.matmul_size, device, settings.threads)
    log(f"{kind.value}: {settings.runs} rounds after {settings.warmup} warm-up "
        f"({', '.join(m.label for m in workloads)} stacks, {settings.matmul_size}x{settings.matmul_size} matmul)")
    probe = cuda_used_bytes if device == "cuda" and torch.cuda.is_available() else None
    with PeakSampler(device_probe=probe) as sampler:
        times = measure_interleaved(runners, settings.runs, settings.warmup, sampler, log)
    report.matmul.append(matmul := MatmulReference(
        device, settings.matmul_size, (settings.threads or torch.get_num_threads()) if device == "cpu" else None,
        summarize(times[MATMUL]), backend=kind.value))
    for m, w in workloads.items():
        report.results.append(ModelResult(
            backend=kind.value, device=device, precision=engines[m].spec.precision, workload=w,
            seconds=summarize(times[m]), peak_rss_bytes=sampler.host_peak.get(m, 0),
            peak_device_bytes=sampler.device_peak.get(m, 0) if probe else None, matmul_gflops_per_s=matmul.gflops_per_s,
        ))
    paper = times[BenchModel.MFPINET]
    for model, found in ((BenchModel.DEEPZ, report.speedups), (BenchModel.MFPINET_RESIDUAL, report.residual)):
        found.append(Ratio(kind.value, summarize(paired_ratios(times[model], paper)),
                           summarize(times[model]).median / summarize(paper).median))
