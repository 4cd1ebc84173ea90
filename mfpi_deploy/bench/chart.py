"""PNG bar chart: latency per output stack for each backend, precision and model, speed-up and MFPINet's accuracy
gate per group (a matplotlib Figure, no pyplot state)."""

from __future__ import annotations

import io
from pathlib import Path

from mfpi_deploy.bench.report import PAPER, BenchReport
from mfpi_deploy.bench.workload import BenchModel
from mfpi_deploy.fileio import write_atomic

COLOURS = {"mfpinet": "#1f77b4", "mfpinet-residual": "#17becf", "deepz": "#d62728"}


def _ms(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1e3:,.1f} s"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:,.1f} ms"


def render_chart(report: BenchReport) -> bytes:
    """PNG bytes: grouped bars (median latency, p10-p90 whiskers), log scale, speed-up per group."""
    from matplotlib.figure import Figure  # imported here: matplotlib is slow to import and only the chart needs it

    groups = list(dict.fromkeys(r.engine for r in report.results))
    models = list(dict.fromkeys(r.workload.model for r in report.results))
    fig = Figure(figsize=(max(6.0, 2.4 * len(groups) + 2), 4.8), dpi=120)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        rows = [r for r in report.results if r.workload.model is model]
        xs = [groups.index(r.engine) + (j - (len(models) - 1) / 2) * width for r in rows]
        ys = [r.latency_ms.median for r in rows]
        lo = [r.latency_ms.median - r.latency_ms.p10 for r in rows]
        hi = [r.latency_ms.p90 - r.latency_ms.median for r in rows]
        label = f"{rows[0].label} ({'one pass' if rows[0].workload.passes == 1 else 'one pass per plane'})"
        bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=COLOURS.get(model.value), label=label)
        for bar, y, up in zip(bars, ys, hi):
            top = (bar.get_x() + bar.get_width() / 2, y + up)
            ax.annotate(_ms(y), top, xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlim(-0.75, len(groups) - 0.25)
    ax.set_xticks(range(len(groups)), [g.replace(" (", "\n(", 1) for g in groups])
    ax.set_ylabel("latency per output stack, ms (log scale)")
    s = report.settings
    ax.set_title(
        f"MFPINet vs Deep-Z: {s['planes']} planes x {s['out_tile']}x{s['out_tile']}, batch {s['batch']}"
        + (" (QUICK mode)" if report.quick else "")
        + f"\npaper, Table III: {PAPER['speedup']}x faster on {PAPER['hardware']} (768x768, 11 planes)",
        fontsize=10,
    )
    ymax = max((r.latency_ms.p90 for r in report.results), default=1.0)
    ymin = min((r.latency_ms.p10 for r in report.results), default=1.0)
    ax.set_ylim(ymin / 2, ymax * 12)  # room above the bars for the legend and the speed-ups
    where = {(r.backend, r.precision): groups.index(r.engine) for r in report.results}
    for sp in report.speedups:
        gate = report.gate(sp.backend, sp.precision, BenchModel.MFPINET)
        text = f"{sp.per_round.median:.1f}x faster" + (f"\ngate {gate.min_psnr_db:.1f} dB" if gate is not None else "")
        at = (where[(sp.backend, sp.precision)], ymax * 2.5)
        ax.annotate(text, at, ha="center", fontsize=9, fontweight="bold")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.text(0.01, 0.01, report.machine.one_line().split(";")[0], fontsize=6, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_chart(report: BenchReport, path: str | Path) -> Path:
    return write_atomic(path, render_chart(report))
