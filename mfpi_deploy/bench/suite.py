"""The whole benchmark: every chosen backend, both networks interleaved, one report."""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.bench.engines import EngineRequest, engine_device, open_engine, random_checkpoint
from mfpi_deploy.bench.machine import describe_machine
from mfpi_deploy.bench.matmul import MatmulReference, matmul_runner
from mfpi_deploy.bench.memory import PeakSampler, cuda_used_bytes_probe
from mfpi_deploy.bench.slide_run import measure_pipeline
from mfpi_deploy.bench.report import BenchReport, ModelResult, Speedup
from mfpi_deploy.bench.runner import check_output, measure_interleaved, stack_runner
from mfpi_deploy.bench.stats import paired_ratios, summarize
from mfpi_deploy.bench.workload import BenchModel, Workload, make_workloads
from mfpi_deploy.errors import MfpiError

PAPER_TILE = 384
QUICK_TILE = 128
QUICK_RUNS = 3
QUICK_WARMUP = 1
DEFAULT_RUNS = 10
DEFAULT_WARMUP = 2

MATMUL = "matmul"

NOISE_NOTE = ("MFPINet, Deep-Z and the matmul reference were timed in alternating order within each round, so "
              "load from other processes affects them alike; per-round ratios are more stable than any "
              "latency")


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. `width` (tests only) shrinks both networks; None = the paper's widths."""

    tile: int = PAPER_TILE
    batch: int = 1
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
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
    base = {"tile": QUICK_TILE, "runs": QUICK_RUNS, "warmup": QUICK_WARMUP, "quick": True, "matmul_size": 1024}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return BenchSettings(**base)  # type: ignore[arg-type]


def _workloads(settings: BenchSettings) -> dict[BenchModel, Workload]:
    widths = {} if settings.width is None else {"mfpinet_width": settings.width, "deepz_width": settings.width}
    return make_workloads(settings.tile, settings.batch, channels=settings.channels, planes=settings.planes,
                          **widths)


def run_benchmark(settings: BenchSettings, backends: list[BackendKind], *, command: str,
                  skipped: dict[str, str] | None = None, work_dir: Path | None = None,
                  notes: tuple[str, ...] = (), strict: bool = True,
                  log: Callable[[str], None] = print) -> BenchReport:
    """Measure both networks on every backend in `backends` and return the report.

    `strict`: a backend whose engines cannot be built or opened is an error (the user named
    it); otherwise it is reported as skipped and the others still run (`auto`).
    """
    machine = describe_machine()
    workloads = _workloads(settings)
    report = BenchReport(
        command=command,
        created_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        settings={**asdict(settings), "out_tile": settings.out_tile},
        machine=machine, quick=settings.quick, skipped=dict(skipped or {}),
    )
    with tempfile.TemporaryDirectory(prefix="mfpi-bench-") as tmp:
        root = Path(work_dir) if work_dir else Path(tmp)
        sources = {m: random_checkpoint(m, w, settings.width, root) for m, w in workloads.items()}
        for kind in backends:
            log(f"{kind.value}: opening engines")
            fp16 = settings.fp16 and kind in (BackendKind.TRT, BackendKind.ORT_CUDA)
            engines: dict[BenchModel, Backend] = {}
            try:
                for m, w in workloads.items():
                    engines[m] = open_engine(EngineRequest(kind, sources[m], w.in_tile, w.batch, fp16,
                                                           settings.threads), root, log)
            except MfpiError as exc:
                for eng in engines.values():
                    eng.close()
                if strict:
                    raise
                report.skipped[kind.value] = f"its engines could not be opened ({exc})"
                log(f"skipping {kind.value}: {report.skipped[kind.value]}")
                continue
            try:
                device = engine_device(kind)
                inputs = {m: w.sample_input(seed=i) for i, (m, w) in enumerate(workloads.items())}
                for m, w in workloads.items():
                    check_output(engines[m], w, inputs[m])
                runners: dict = {m: stack_runner(engines[m], w, inputs[m]) for m, w in workloads.items()}
                runners[MATMUL] = matmul_runner(settings.matmul_size, device, settings.threads)
                log(f"{kind.value}: {settings.runs} rounds after {settings.warmup} warm-up "
                    f"(MFPINet stack, Deep-Z stack, {settings.matmul_size}x{settings.matmul_size} matmul)")
                probe = cuda_used_bytes_probe() if device == "cuda" else None
                with PeakSampler(device_probe=probe) as sampler:
                    times = measure_interleaved(runners, settings.runs, settings.warmup, sampler, log)
                threads = (settings.threads or torch.get_num_threads()) if device == "cpu" else None
                matmul = MatmulReference(device=device, size=settings.matmul_size, backend=kind.value, threads=threads,
                                         seconds=summarize(times.seconds[MATMUL]))
                report.matmul.append(matmul)
                for m, w in workloads.items():
                    eng = engines[m]
                    report.results.append(ModelResult(
                        backend=kind.value, device=device, precision=eng.spec.precision, model=m.value,
                        passes=w.passes, input_shape=w.input_shape, output_shape=w.output_shape,
                        parameters=w.parameters, flops=w.flops, output_voxels=w.output_voxels,
                        seconds=summarize(times.seconds[m]), peak_rss_bytes=times.host_peak_bytes[m],
                        peak_device_bytes=times.device_peak_bytes[m] if probe else None,
                        matmul_gflops_per_s=matmul.gflops_per_s,
                    ))
                ratios = paired_ratios(times.seconds[BenchModel.DEEPZ], times.seconds[BenchModel.MFPINET])
                report.speedups.append(Speedup(
                    backend=kind.value, per_round=summarize(ratios),
                    of_medians=summarize(times.seconds[BenchModel.DEEPZ]).median
                    / summarize(times.seconds[BenchModel.MFPINET]).median,
                ))
                if settings.pipeline:
                    log(f"{kind.value}: pipeline mode (run_slide on a generated slide)")
                    try:
                        report.pipeline.append(measure_pipeline(engines[BenchModel.MFPINET], settings.tile,
                                                                settings.batch, root, log))
                    except MfpiError as exc:
                        report.notes.append(f"pipeline mode on {kind.value} did not run: {exc}")
            finally:
                for eng in engines.values():
                    eng.close()
    report.notes.extend(notes)
    if hasattr(os, "getloadavg"):
        report.notes.append("load average at end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
                            + f" ({machine.logical_cores} logical cores)")
    report.notes.append(NOISE_NOTE)
    report.notes.append("Peak RSS is the whole process's resident memory while that model ran "
                        "(both engines of the backend loaded, plus memory the process kept from exporting engines "
                        "in-process); weights are random, which does not change timing")
    if settings.width is not None:
        report.notes.append(f"networks narrowed to width {settings.width} (test setting, not the paper's networks)")
    return report

