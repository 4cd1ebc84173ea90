"""PNG bar chart: latency per output stack for each backend and model (matplotlib, Agg)."""
from __future__ import annotations

import io
from pathlib import Path

from mfpi_deploy.bench.report import PAPER, BenchReport, model_label
from mfpi_deploy.fileio import write_atomic

COLOURS = {"mfpinet": "#1f77b4", "deepz": "#d62728"}


def render_chart(report: BenchReport) -> bytes:
    """PNG bytes: grouped bars (median latency, p10-p90 whiskers), log scale, speed-up per group."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    backends: list[str] = []
    for r in report.results:
        label = f"{r.backend}\n({r.device}, {r.precision})"
        if label not in backends:
            backends.append(label)
    models = []
    for r in report.results:
        if r.model not in models:
            models.append(r.model)
    fig = Figure(figsize=(max(6.0, 2.4 * len(backends) + 2), 4.8), dpi=120)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        xs, ys, lo, hi, name = [], [], [], [], model
        for r in report.results:
            if r.model != model:
                continue
            lat = r.latency_ms
            xs.append(backends.index(f"{r.backend}\n({r.device}, {r.precision})") + (j - (len(models) - 1) / 2) * width)
            ys.append(lat.median)
            lo.append(lat.median - lat.p10)
            hi.append(lat.p90 - lat.median)
            name = model_label(r)
        bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=COLOURS.get(model, None),
                      label=f"{name} ({'one pass' if model == 'mfpinet' else 'one pass per plane'})")
        for bar, y, up in zip(bars, ys, hi):
            ax.annotate(_ms(y), (bar.get_x() + bar.get_width() / 2, y + up), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlim(-0.75, len(backends) - 0.25)
    ax.set_xticks(range(len(backends)), backends)
    ax.set_ylabel("latency per output stack, ms (log scale)")
    s = report.settings
    title = (f"MFPINet vs Deep-Z: {s['planes']} planes x {s['out_tile']}x{s['out_tile']}, batch {s['batch']}"
             + (" (QUICK mode)" if report.quick else "")
             + f"\npaper, Table III: {PAPER['speedup']}x faster on {PAPER['hardware']} (768x768, 11 planes)")
    ax.set_title(title, fontsize=10)
    ymax = max((r.latency_ms.p90 for r in report.results), default=1.0)
    ymin = min((r.latency_ms.p10 for r in report.results), default=1.0)
    ax.set_ylim(ymin / 2, ymax * 6)
    for sp in report.speedups:
        for i, b in enumerate(backends):
            if b.startswith(sp.backend + "\n"):
                ax.annotate(f"{sp.per_round.median:.1f}x faster", (i, ymax * 2.5), ha="center",
                            fontsize=9, fontweight="bold")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.text(0.01, 0.01, report.machine.one_line().split(";")[0], fontsize=6, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _ms(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1e3:,.1f} s"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:,.1f} ms"


def save_chart(report: BenchReport, path: str | Path) -> Path:
    return write_atomic(path, render_chart(report))
