"""The benchmark's results as data, and as a terminal table, JSON and Markdown.

Every rendering reads the same `BenchReport`, so the numbers agree across formats.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from mfpi_deploy.bench.machine import MachineInfo
from mfpi_deploy.bench.matmul import MatmulReference
from mfpi_deploy.bench.stats import Summary

SCHEMA_VERSION = 1

# Paper, Table III (RTX 2080 Ti, one 768x768x11x3 stack, PyTorch).
PAPER = {
    "hardware": "NVIDIA RTX 2080 Ti",
    "mfpinet_ms": 27.8,
    "deepz_stack_ms": 673.8,
    "deepz_plane_ms": 61.3,
    "mfpinet_gflops": 264.2,
    "deepz_stack_gflops": 8386.4,
    "speedup": round(673.8 / 27.8, 1),
}


@dataclass(frozen=True)
class ModelResult:
    """One model on one backend: cost, latency per output stack, rates and memory."""

    backend: str
    device: str
    precision: str
    model: str  # "mfpinet" | "deepz"
    passes: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    flops: int  # per stack (all passes)
    output_voxels: int
    seconds: Summary  # per stack
    peak_rss_bytes: int
    peak_device_bytes: int | None
    matmul_gflops_per_s: float | None

    @property
    def latency_ms(self) -> Summary:
        return self.seconds.scaled(1e3)

    @property
    def megavoxels_per_s(self) -> float:
        return self.output_voxels / self.seconds.median / 1e6

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.seconds.median / 1e9

    @property
    def matmul_share(self) -> float | None:
        """Achieved GFLOP/s over the device's measured matrix-product rate."""
        if not self.matmul_gflops_per_s:
            return None
        return self.gflops_per_s / self.matmul_gflops_per_s

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend, "device": self.device, "precision": self.precision,
            "model": self.model, "passes_per_stack": self.passes,
            "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
            "parameters": self.parameters, "gflops_per_stack": self.flops / 1e9,
            "output_megavoxels_per_stack": self.output_voxels / 1e6,
            "latency_ms": self.latency_ms.to_dict(),
            "throughput_megavoxels_per_s": self.megavoxels_per_s,
            "achieved_gflops_per_s": self.gflops_per_s,
            "matmul_share": self.matmul_share,
            "peak_host_rss_mib": self.peak_rss_bytes / 2**20,
            "peak_device_mib": None if self.peak_device_bytes is None else self.peak_device_bytes / 2**20,
        }


@dataclass(frozen=True)
class Speedup:
    """MFPINet over Deep-Z on one backend for the same output volume."""

    backend: str
    per_round: Summary  # of Deep-Z stack time / MFPINet stack time, round by round
    of_medians: float  # median Deep-Z time / median MFPINet time

    def to_dict(self) -> dict[str, object]:
        return {"median": self.per_round.median, "p10": self.per_round.p10, "p90": self.per_round.p90,
                "rounds": self.per_round.n, "ratio_of_median_latencies": self.of_medians,
                "paper": PAPER["speedup"]}


@dataclass(frozen=True)
class PipelineResult:
    """The MFPINet engine inside the whole-slide pipeline (run_slide), against the bare engine."""

    backend: str
    slide_side: int
    tile: int
    halo: int
    batch: int
    tiles: int
    loop_seconds: float  # tile loop: read, infer, write overlapped
    total_seconds: float  # the whole call, including pyramid and final rename
    engine_megavoxels_per_s_in_pipeline: float  # every computed tile's output (halos included) per loop second
    bare_engine_megavoxels_per_s: float  # the same engine timed alone at the same tile and batch
    end_to_end_megavoxels_per_s: float  # the slide's stack per second of the whole call
    halo_overhead: float  # share of computed output thrown away at tile borders

    @property
    def efficiency(self) -> float:
        """Pipeline throughput over bare engine throughput (target >= 0.9)."""
        return self.engine_megavoxels_per_s_in_pipeline / self.bare_engine_megavoxels_per_s

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "efficiency": self.efficiency}


@dataclass
class BenchReport:
    """Everything one `mfpi-bench` run measured, with the settings and machine it ran on."""

    command: str
    created_utc: str
    settings: dict[str, object]
    machine: MachineInfo
    quick: bool
    matmul: list[MatmulReference] = field(default_factory=list)
    results: list[ModelResult] = field(default_factory=list)
    speedups: list[Speedup] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    pipeline: list[PipelineResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": "mfpi-bench",
            "command": self.command,
            "created_utc": self.created_utc,
            "quick": self.quick,
            "settings": self.settings,
            "machine": self.machine.to_dict(),
            "matmul_reference": [m.to_dict() for m in self.matmul],
            "results": [r.to_dict() for r in self.results],
            "speedup": {s.backend: s.to_dict() for s in self.speedups},
            "pipeline": [p.to_dict() for p in self.pipeline],
            "skipped_backends": dict(self.skipped),
            "paper_table3": dict(PAPER),
            "notes": list(self.notes),
        }



def to_json(report: BenchReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


_LABEL = {"mfpinet": "MFPINet", "deepz": "Deep-Z"}


def model_label(result: ModelResult) -> str:
    if result.passes > 1:
        return f"{_LABEL.get(result.model, result.model)} x{result.passes}"
    return _LABEL.get(result.model, result.model)


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def _rate(value: float) -> str:
    """Two decimals, or three significant digits below 1 (Deep-Z's rates on a CPU are ~0.05)."""
    return f"{value:,.2f}" if value >= 1 else f"{value:.3g}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def table_rows(report: BenchReport) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table (shared by terminal and Markdown)."""
    header = ["backend", "model", "params", "GFLOP/stack", "latency ms (p10-p90)", "Mvox/s",
              "GFLOP/s", "of matmul", "peak RSS MiB", "device MiB"]
    rows = []
    for r in report.results:
        lat = r.latency_ms
        rows.append([
            f"{r.backend} ({r.device}, {r.precision})", model_label(r), f"{r.parameters:,}",
            f"{r.flops / 1e9:,.2f}", f"{lat.median:,.1f} ({lat.p10:,.1f}-{lat.p90:,.1f})",
            _rate(r.megavoxels_per_s), f"{r.gflops_per_s:,.1f}", _share(r.matmul_share),
            _mib(r.peak_rss_bytes), _mib(r.peak_device_bytes),
        ])
    return header, rows


def _settings_line(report: BenchReport) -> str:
    s = report.settings
    line = (f"MFPINet input {s['tile']}x{s['tile']} -> {s['out_tile']}x{s['out_tile']} x {s['planes']} planes; "
            f"Deep-Z {s['planes']} passes at {s['out_tile']}x{s['out_tile']}; batch {s['batch']}, "
            f"{s['runs']} timed rounds after {s['warmup']} warm-up, interleaved")
    if s.get("threads"):
        line += f"; {s['threads']} thread(s)"
    return line


def _quick_line(report: BenchReport) -> str | None:
    if not report.quick:
        return None
    return ("QUICK MODE: smaller tile and fewer runs than the paper's 384 -> 768; "
            "absolute times are not comparable with Table III, the speed-up is indicative")


def _matmul_where(m: MatmulReference) -> str:
    threads = f", {m.threads} thread(s)" if m.threads else ""
    rounds = f", interleaved with the {m.backend} rounds" if m.backend else ""
    return f" ({m.device}, torch.matmul, float32 {m.size}x{m.size}{threads}{rounds})"


def _speedup_text(s: Speedup) -> str:
    r = s.per_round
    return (f"{s.backend}: MFPINet is {r.median:.1f}x faster than Deep-Z for the same output "
            f"(per-round p10-p90 {r.p10:.1f}-{r.p90:.1f}x over {r.n} rounds; paper {PAPER['speedup']}x on "
            f"{PAPER['hardware']})")


def _pipeline_text(p: PipelineResult) -> str:
    return (f"pipeline ({p.backend}, MFPINet, {p.slide_side}x{p.slide_side} slide, {p.tiles} tiles of {p.tile} px, "
            f"halo {p.halo}): engine {p.engine_megavoxels_per_s_in_pipeline:,.2f} Mvox/s inside run_slide vs "
            f"{p.bare_engine_megavoxels_per_s:,.2f} bare = {100 * p.efficiency:.0f}% efficiency (target 90%); "
            f"{p.end_to_end_megavoxels_per_s:,.2f} Mvox/s of stack end to end "
            f"({100 * p.halo_overhead:.0f}% of computed output is halo)")


def format_table(report: BenchReport) -> str:
    """The report as plain text for the terminal."""
    header, rows = table_rows(report)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = []
    quick = _quick_line(report)
    if quick:
        lines.append(quick)
    lines.append(_settings_line(report))
    lines.append(f"machine: {report.machine.one_line()}")
    for m in report.matmul:
        lines.append(f"matmul reference{_matmul_where(m)}: {m.gflops_per_s:,.1f} GFLOP/s "
                     f"(median; p10-p90 {m.flops / m.seconds.p90 / 1e9:,.1f}-{m.flops / m.seconds.p10 / 1e9:,.1f})")
    lines.append("")
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    lines.append("")
    for s in report.speedups:
        lines.append(_speedup_text(s))
    for p in report.pipeline:
        lines.append(_pipeline_text(p))
    for kind, reason in report.skipped.items():
        lines.append(f"skipped {kind}: {reason}")
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def to_markdown(report: BenchReport) -> str:
    """The report as a Markdown section for people (README, issue, lab notebook)."""
    header, rows = table_rows(report)
    out = ["# mfpi-bench: MFPINet against Deep-Z per-plane inference", ""]
    quick = _quick_line(report)
    if quick:
        out += [f"**{quick}.**", ""]
    out += [f"- Command: `{report.command}`", f"- Measured: {report.created_utc}",
            f"- Machine: {report.machine.one_line()}",
            f"- Packages: {', '.join(f'{k} {v}' for k, v in report.machine.packages.items())}"
            + (f" (source commit {report.machine.source_commit})" if report.machine.source_commit else ""),
            f"- Workload: {_settings_line(report)}"]
    if report.machine.load_average:
        out.append(f"- Load average at start: {', '.join(str(x) for x in report.machine.load_average)}")
    for m in report.matmul:
        out.append(f"- Matrix-product reference{_matmul_where(m)}: {m.gflops_per_s:,.1f} GFLOP/s (median of rounds)")
    out += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out += ["", "Latency is per output stack (MFPINet: one pass; Deep-Z: one pass per plane). "
                "A voxel is one pixel of one plane (all colour channels).", ""]
    if report.speedups:
        out += ["## Speed-up of MFPINet over Deep-Z (same output volume)", "",
                "| backend | speed-up (median of rounds) | p10-p90 | ratio of median latencies | paper (2080 Ti) |",
                "|---|---|---|---|---|"]
        for s in report.speedups:
            r = s.per_round
            out.append(f"| {s.backend} | {r.median:.1f}x | {r.p10:.1f}-{r.p90:.1f}x | {s.of_medians:.1f}x | "
                       f"{PAPER['speedup']}x |")
        out.append("")
    if report.pipeline:
        out += ["## Pipeline efficiency (MFPINet inside run_slide)", "",
                "| backend | slide | tiles | halo | engine Mvox/s in pipeline | bare engine Mvox/s | efficiency "
                "| end-to-end Mvox/s of stack | halo overhead |",
                "|---|---|---|---|---|---|---|---|---|"]
        for p in report.pipeline:
            out.append(f"| {p.backend} | {p.slide_side}x{p.slide_side} | {p.tiles} x {p.tile} px | {p.halo} | "
                       f"{p.engine_megavoxels_per_s_in_pipeline:,.2f} | {p.bare_engine_megavoxels_per_s:,.2f} | "
                       f"{100 * p.efficiency:.0f}% | {p.end_to_end_megavoxels_per_s:,.2f} | "
                       f"{100 * p.halo_overhead:.0f}% |")
        out += ["", "Efficiency counts every computed tile's output (halos included) per second of the "
                    "tile loop, against the same engine timed alone on batches of the same shape just before and after; target at least 90%. End to end "
                    "counts only the slide's stack over the whole call (halos, pyramid and writing included).", ""]
    if report.skipped:
        out += ["Skipped backends: " + "; ".join(f"{k} ({v})" for k, v in report.skipped.items()), ""]
    if report.notes:
        out += ["Notes:", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)
