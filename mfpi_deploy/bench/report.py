"""The benchmark's results as data (with the statistics of timed rounds), and as a terminal table, JSON and
Markdown: every rendering reads the same `BenchReport`, so the numbers agree across formats."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, astuple, dataclass, field
from typing import Any

import numpy as np

from mfpi_deploy.bench.machine import MachineInfo
from mfpi_deploy.bench.workload import BenchModel, Workload
from mfpi_deploy.engine.manifest import GateFigure

# 2: rows per backend x precision ("variants", with each network's accuracy gate); speedup and residual_cost
# became lists with backend and precision
SCHEMA_VERSION = 2
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
QUICK_NOTE = (
    "QUICK MODE: smaller tile and fewer runs than the paper's 384 -> 768; "
    "absolute times are not comparable with Table III, the speed-up is indicative"
)
MEASURED, SKIPPED, GATE_FAILED = "measured", "skipped", "gate failed"


@dataclass(frozen=True)
class Summary:
    """Median, 10th and 90th percentile (linear interpolation, numpy's default), mean, min, max."""

    n: int
    median: float
    p10: float
    p90: float
    mean: float
    min: float
    max: float

    def scaled(self, factor: float) -> Summary:
        """The same summary with every value multiplied by a positive `factor` (e.g. s -> ms)."""
        return Summary(self.n, *(factor * v for v in astuple(self)[1:]))


def summarize(samples: Sequence[float]) -> Summary:
    """Summarise timings (or any positive samples); at least one sample."""
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("summarize needs a non-empty 1-D sequence of samples")
    p10, p50, p90 = np.percentile(values, [10.0, 50.0, 90.0])
    return Summary(int(values.size), *(float(v) for v in (p50, p10, p90, values.mean(), values.min(), values.max())))


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios a_i / b_i of runs made in the same round (unequal lengths: ValueError): a slow spell on a
    shared machine hits both runs of a round, so their ratio stays stable when the absolute times do not."""
    return [float(a) / float(b) for a, b in zip(numerators, denominators, strict=True)]


@dataclass(frozen=True)
class MatmulReference:
    """The hardware reference: float32 (n x n) @ (n x n) by torch.matmul on `device`, 2 n^3 FLOPs per product."""

    device: str
    size: int
    threads: int | None  # CPU threads (None on a GPU)
    seconds: Summary
    backend: str = ""  # the backend whose rounds it was interleaved with

    @property
    def flops(self) -> int:
        return 2 * self.size**3

    @property
    def gflops_per_s(self) -> float:
        """Rate at the median time."""
        return self.flops / self.seconds.median / 1e9

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "device": self.device,
            "method": "torch.matmul",
            "size": self.size,
            "dtype": "float32",
            "threads": self.threads,
            "seconds": asdict(self.seconds),
            "gflops_per_s": self.gflops_per_s,
        }


@dataclass(frozen=True)
class ModelResult:
    """One model on one backend: cost, latency per output stack, rates and memory."""

    backend: str
    device: str
    precision: str
    workload: Workload  # the model, its shapes and cost per stack
    seconds: Summary  # per stack
    peak_rss_bytes: int
    peak_device_bytes: int | None
    matmul_gflops_per_s: float | None

    @property
    def engine(self) -> str:
        return f"{self.backend} ({self.device}, {self.precision})"

    @property
    def label(self) -> str:
        w = self.workload
        return f"{w.model.label} x{w.passes}" if w.passes > 1 else w.model.label

    @property
    def latency_ms(self) -> Summary:
        return self.seconds.scaled(1e3)

    @property
    def megavoxels_per_s(self) -> float:
        return self.workload.output_voxels / self.seconds.median / 1e6

    @property
    def gflops_per_s(self) -> float:
        return self.workload.flops / self.seconds.median / 1e9

    @property
    def matmul_share(self) -> float | None:
        """Achieved GFLOP/s over the device's measured matrix-product rate."""
        return self.gflops_per_s / self.matmul_gflops_per_s if self.matmul_gflops_per_s else None

    def to_dict(self) -> dict[str, object]:
        w = self.workload
        return {
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "model": w.model.value,
            "passes_per_stack": w.passes,
            "input_shape": list(w.input_shape),
            "output_shape": list(w.output_shape),
            "parameters": w.parameters,
            "gflops_per_stack": w.flops / 1e9,
            "output_megavoxels_per_stack": w.output_voxels / 1e6,
            "latency_ms": asdict(self.latency_ms),
            "throughput_megavoxels_per_s": self.megavoxels_per_s,
            "achieved_gflops_per_s": self.gflops_per_s,
            "matmul_share": self.matmul_share,
            "peak_host_rss_mib": self.peak_rss_bytes / 2**20,
            "peak_device_mib": None if self.peak_device_bytes is None else self.peak_device_bytes / 2**20,
        }


@dataclass(frozen=True)
class Ratio:
    """A model's stack time over MFPINet's (paper form) on one backend, per round (same load) and of the medians:
    Deep-Z's is MFPINet's speed-up, the residual form's (above 1) its extra cost."""

    backend: str
    per_round: Summary
    of_medians: float
    precision: str = "fp32"

    def to_dict(self) -> dict[str, object]:
        r = self.per_round
        return {
            "backend": self.backend,
            "precision": self.precision,
            "median": r.median,
            "p10": r.p10,
            "p90": r.p90,
            "rounds": r.n,
            "ratio_of_median_latencies": self.of_medians,
        }


def _gate_dict(gate: GateFigure | None) -> dict[str, object] | None:
    return None if gate is None else asdict(gate) | {"passed": gate.passed}


@dataclass(frozen=True)
class Variant:
    """One backend x precision row: measured, skipped (why) or failed at its accuracy gate (which network, the
    figure), with each network's gate (lowest per-plane PSNR against its fp32 engine) by BenchModel value."""

    backend: str
    precision: str
    status: str  # MEASURED | SKIPPED | GATE_FAILED
    reason: str = ""
    gates: dict[str, GateFigure] = field(default_factory=dict)  # none for fp32 (the reference)

    def to_dict(self) -> dict[str, object]:
        fields = {k: v for k, v in asdict(self).items() if k != "gates"}
        return fields | {"accuracy": {m: _gate_dict(g) for m, g in self.gates.items()}}


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
    speedups: list[Ratio] = field(default_factory=list)  # Deep-Z over MFPINet
    residual: list[Ratio] = field(default_factory=list)  # MFPINet residual over MFPINet
    skipped: dict[str, str] = field(default_factory=dict)
    pipeline: list[PipelineResult] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)  # backend x precision rows, measured or not
    notes: list[str] = field(default_factory=list)

    def gate(self, backend: str, precision: str, model: BenchModel) -> GateFigure | None:
        """The accuracy gate of `model`'s `precision` engine on `backend` (None: fp32, or none recorded)."""
        row = next((v for v in self.variants if (v.backend, v.precision) == (backend, precision)), None)
        return None if row is None else row.gates.get(model.value)

    def to_dict(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": "mfpi-bench",
            "command": self.command,
            "created_utc": self.created_utc,
            "quick": self.quick,
            "settings": self.settings,
            "machine": asdict(self.machine),
            "matmul_reference": [m.to_dict() for m in self.matmul],
            "results": [
                {**r.to_dict(), "accuracy": _gate_dict(self.gate(r.backend, r.precision, r.workload.model))}
                for r in self.results
            ],
            "speedup": [{**s.to_dict(), "paper": PAPER["speedup"]} for s in self.speedups],
            "residual_cost": [{**c.to_dict(), "extra_percent": 100 * (c.per_round.median - 1)} for c in self.residual],
            "variants": [v.to_dict() for v in self.variants],
            "pipeline": [p.to_dict() for p in self.pipeline],
            "skipped_backends": dict(self.skipped),
            "paper_table3": dict(PAPER),
            "notes": list(self.notes),
        }


def to_json(report: BenchReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


# Rendering for people. A table is a header and rows of cells, written as plain text or Markdown; its columns
# are (title, the cell of one item) pairs, so each title sits beside how its cells are written.
Table = tuple[list[str], list[list[str]]]
Columns = Sequence[tuple[str, Callable[[Any], str]]]


def _table(columns: Columns, items: Sequence[Any]) -> Table:
    return [title for title, _ in columns], [[cell(item) for _, cell in columns] for item in items]


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A plain-text table: header, rule, rows, columns padded to their widest cell."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    return [
        "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows),
    ]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table and the blank line after it."""
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header), *(f"| {' | '.join(r)} |" for r in rows), ""]


def _rate(value: float) -> str:
    """Two decimals, or three significant digits below 1 (Deep-Z's rates on a CPU are ~0.05)."""
    return f"{value:,.2f}" if value >= 1 else f"{value:.3g}"


def _pct(ratio: float) -> str:
    """A ratio's excess over 1 in percent: 1.031 -> '+3.1%'."""
    return f"{100 * (ratio - 1):+.1f}%"


def _ms(latency: Summary) -> str:
    """Median latency with its p10-p90 spread: '11.0 (10.2-11.8)'."""
    return f"{latency.median:,.1f} ({latency.p10:,.1f}-{latency.p90:,.1f})"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f}"


def _gate_cell(precision: str, gate: GateFigure | None) -> str:
    """'47.3 dB', '44.1 dB < 45 dB' (failed), 'reference' (fp32) or '-' (no gate recorded)."""
    if gate is None:
        return "reference" if precision == "fp32" else "-"
    if gate.passed:
        return f"{gate.min_psnr_db:.1f} dB" + (f" ({gate.method})" if gate.method not in ("", gate.runtime) else "")
    if gate.threshold_db is None:
        return f"{gate.min_psnr_db:.1f} dB (no threshold)"
    return f"{gate.min_psnr_db:.1f} dB < {gate.threshold_db:g} dB"


def table_rows(report: BenchReport) -> Table:
    """Header and cells of the results table (shared by terminal and Markdown)."""
    columns: list[tuple[str, Callable[[ModelResult], str]]] = [
        ("backend", lambda r: f"{r.backend} ({r.device})"),
        ("precision", lambda r: r.precision),
        ("model", lambda r: r.label),
        ("params", lambda r: f"{r.workload.parameters:,}"),
        ("GFLOP/stack", lambda r: f"{r.workload.flops / 1e9:,.2f}"),
        ("latency ms (p10-p90)", lambda r: _ms(r.latency_ms)),
        ("Mvox/s", lambda r: _rate(r.megavoxels_per_s)),
        ("GFLOP/s", lambda r: f"{r.gflops_per_s:,.1f}"),
        ("of matmul", lambda r: "-" if r.matmul_share is None else f"{100 * r.matmul_share:.0f}%"),
        ("peak RSS MiB", lambda r: _mib(r.peak_rss_bytes)),
        ("device MiB", lambda r: _mib(r.peak_device_bytes)),
        (
            "gate (min PSNR vs fp32)",
            lambda r: _gate_cell(r.precision, report.gate(r.backend, r.precision, r.workload.model)),
        ),
    ]
    return _table(columns, report.results)


def variant_rows(report: BenchReport) -> Table:
    """Header and cells of the backend x precision table: MFPINet against Deep-Z with both gates (terminal and
    Markdown); rows not measured say why."""
    found = {(r.backend, r.precision, r.workload.model): r for r in report.results}
    ratios = {(s.backend, s.precision): s.per_round for s in report.speedups}
    planes = report.settings.get("planes", 11)
    header = ["backend", "precision", "MFPINet ms (p10-p90)", "MFPINet Mvox/s", f"Deep-Z x{planes} ms"]
    header += ["speed-up (p10-p90)", "MFPINet gate", "Deep-Z gate", "status"]
    rows = []
    for v in report.variants:
        mfpi, deepz = (found.get((v.backend, v.precision, m)) for m in (BenchModel.MFPINET, BenchModel.DEEPZ))
        timing = ["-"] * 4
        if mfpi is not None and deepz is not None and (r := ratios.get((v.backend, v.precision))) is not None:
            speedup = f"{r.median:.1f}x ({r.p10:.1f}-{r.p90:.1f})"
            timing = [_ms(mfpi.latency_ms), _rate(mfpi.megavoxels_per_s), f"{deepz.latency_ms.median:,.1f}", speedup]
        gates = [_gate_cell(v.precision, v.gates.get(m.value)) for m in (BenchModel.MFPINET, BenchModel.DEEPZ)]
        rows.append([v.backend, v.precision, *timing, *gates, v.status + (f": {v.reason}" if v.reason else "")])
    return header, rows


def _settings_line(report: BenchReport) -> str:
    s = report.settings
    line = (
        f"MFPINet (paper and residual forms) input {s['tile']}x{s['tile']} -> {s['out_tile']}x{s['out_tile']} "
        f"x {s['planes']} planes; Deep-Z {s['planes']} passes at {s['out_tile']}x{s['out_tile']}; "
        f"batch {s['batch']}, {s['runs']} timed rounds after {s['warmup']} warm-up, interleaved"
    )
    return line + (f"; {s['threads']} thread(s)" if s.get("threads") else "")


def _matmul_where(m: MatmulReference) -> str:
    threads = f", {m.threads} thread(s)" if m.threads else ""
    rounds = f", interleaved with the {m.backend} rounds" if m.backend else ""
    return f" ({m.device}, torch.matmul, float32 {m.size}x{m.size}{threads}{rounds})"


def format_table(report: BenchReport) -> str:
    """The report as plain text for the terminal."""
    lines = [QUICK_NOTE] if report.quick else []
    lines += [_settings_line(report), f"machine: {report.machine.one_line()}"]
    lines += [
        f"matmul reference{_matmul_where(m)}: {m.gflops_per_s:,.1f} GFLOP/s "
        f"(median; p10-p90 {m.flops / m.seconds.p90 / 1e9:,.1f}-{m.flops / m.seconds.p10 / 1e9:,.1f})"
        for m in report.matmul
    ]
    lines += ["", *_text_table(*table_rows(report)), ""]
    if report.variants:
        lines += [*_text_table(*variant_rows(report)), ""]
    for s in report.speedups:
        r = s.per_round
        lines.append(
            f"{s.backend} {s.precision}: MFPINet is {r.median:.1f}x faster than Deep-Z for the same output "
            f"(per-round p10-p90 {r.p10:.1f}-{r.p90:.1f}x over {r.n} rounds; paper {PAPER['speedup']}x on "
            f"{PAPER['hardware']})"
        )
    for c in report.residual:
        r = c.per_round
        lines.append(
            f"{c.backend} {c.precision}: MFPINet residual costs {_pct(r.median)} per stack over MFPINet "
            f"(per-round p10-p90 {_pct(r.p10)} to {_pct(r.p90)}; ratio of median latencies {c.of_medians:.3f})"
        )
    for p in report.pipeline:
        lines.append(
            f"pipeline ({p.backend}, MFPINet, {p.slide_side}x{p.slide_side} slide, {p.tiles} tiles of "
            f"{p.tile} px, halo {p.halo}): engine {p.engine_megavoxels_per_s_in_pipeline:,.2f} Mvox/s inside "
            f"run_slide vs {p.bare_engine_megavoxels_per_s:,.2f} bare = {100 * p.efficiency:.0f}% efficiency "
            f"(target 90%); {p.end_to_end_megavoxels_per_s:,.2f} Mvox/s of stack end to end "
            f"({100 * p.halo_overhead:.0f}% of computed output is halo)"
        )
    lines += [f"skipped {kind}: {reason}" for kind, reason in report.skipped.items()]
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


RESIDUAL_COLUMNS: Columns = [
    ("backend", lambda c: c.backend),
    ("precision", lambda c: c.precision),
    ("extra (median of rounds)", lambda c: _pct(c.per_round.median)),
    ("p10-p90", lambda c: f"{_pct(c.per_round.p10)} to {_pct(c.per_round.p90)}"),
    ("ratio of median latencies", lambda c: f"{c.of_medians:.3f}"),
]
PIPELINE_COLUMNS: Columns = [
    ("backend", lambda p: p.backend),
    ("slide", lambda p: f"{p.slide_side}x{p.slide_side}"),
    ("tiles", lambda p: f"{p.tiles} x {p.tile} px"),
    ("halo", lambda p: str(p.halo)),
    ("engine Mvox/s in pipeline", lambda p: f"{p.engine_megavoxels_per_s_in_pipeline:,.2f}"),
    ("bare engine Mvox/s", lambda p: f"{p.bare_engine_megavoxels_per_s:,.2f}"),
    ("efficiency", lambda p: f"{100 * p.efficiency:.0f}%"),
    ("end-to-end Mvox/s of stack", lambda p: f"{p.end_to_end_megavoxels_per_s:,.2f}"),
    ("halo overhead", lambda p: f"{100 * p.halo_overhead:.0f}%"),
]


def to_markdown(report: BenchReport) -> str:
    """The report as a Markdown section for people (README, issue, lab notebook)."""
    out = ["# mfpi-bench: MFPINet against Deep-Z per-plane inference", ""]
    if report.quick:
        out += [f"**{QUICK_NOTE}.**", ""]
    machine = report.machine
    commit = f" (source commit {machine.source_commit})" if machine.source_commit else ""
    out += [
        f"- Command: `{report.command}`",
        f"- Measured: {report.created_utc}",
        f"- Machine: {machine.one_line()}",
        f"- Packages: {', '.join(f'{k} {v}' for k, v in machine.packages.items())}{commit}",
        f"- Workload: {_settings_line(report)}",
    ]
    if machine.load_average:
        out.append(f"- Load average at start: {', '.join(str(x) for x in machine.load_average)}")
    out += [
        f"- Matrix-product reference{_matmul_where(m)}: {m.gflops_per_s:,.1f} GFLOP/s (median of rounds)"
        for m in report.matmul
    ]
    out += ["", *_md_table(*table_rows(report))]
    out += [
        "Latency is per output stack (MFPINet, both forms: one pass; Deep-Z: one pass per plane). "
        "A voxel is one pixel of one plane (all colour channels).",
        "",
    ]
    if report.variants:
        out += ["## Speed-up of MFPINet over Deep-Z by backend and precision (same output volume)", ""]
        out += [
            *_md_table(*variant_rows(report)),
            f"Speed-up: median of per-round ratios (Deep-Z over MFPINet, timed in the same rounds); paper "
            f"{PAPER['speedup']}x on {PAPER['hardware']}. Gate: the engine's lowest per-plane PSNR against its "
            "fp32 engine at export (real and simulated tiles), on the backend's runtime; fp32 is the reference.",
            "",
        ]
    if report.residual:
        out += ["## Extra cost of the residual form (MFPINet residual over MFPINet, per stack)", ""]
        out += _md_table(*_table(RESIDUAL_COLUMNS, report.residual))
    if report.pipeline:
        out += ["## Pipeline efficiency (MFPINet inside run_slide)", ""]
        out += [
            *_md_table(*_table(PIPELINE_COLUMNS, report.pipeline)),
            "Efficiency counts every computed tile's output (halos included) per second of the tile loop, against "
            "the same engine timed alone on batches of the same shape just before and after; target at least 90%. "
            "End to end counts only the slide's stack over the whole call (halos, pyramid and writing included).",
            "",
        ]
    if report.skipped:
        out += ["Skipped backends: " + "; ".join(f"{k} ({v})" for k, v in report.skipped.items()), ""]
    if report.notes:
        out += ["Notes:", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)
