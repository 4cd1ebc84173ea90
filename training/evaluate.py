"""Per-plane evaluation of a checkpoint against two baselines, in the layout of the paper's Table II.

Methods, all scored by the same code on the same held-out region:
- model (or, for several, each by its name: MFPINet, Deep-Z): the network's stack from the
  degraded in-focus plane, predicted through the tiling and backend code that `mfpi-run` runs
  (a checkpoint on torch, or an exported engine), timed;
- bicubic: the degraded input upsampled x2 by bicubic interpolation, copied to every plane;
- in-focus copy: the true full-resolution in-focus plane copied to every plane (an upper
  bound for any method that does not refocus; its in-focus row is exact, PSNR inf).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.checkpoint.default import resolve_checkpoint
from mfpi_deploy.degrade import Degradation, degrade_uint8, upsample_bicubic
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import write_atomic
from mfpi_deploy.infer import predict_image
from mfpi_deploy.models import Architecture
from mfpi_deploy.tiling import DEFAULT_HALO, Box, check_halo
from training.data import parse_rect, to_grey
from training.metrics import PlaneMetrics, stack_metrics
from training.planes import PlaneSelection, select_planes
from training.stack import FocalStack, IntensityRule, open_stack

BASELINES = ("bicubic", "in-focus copy")


@dataclass
class MethodResult:
    planes: list[PlaneMetrics]

    @property
    def mean(self) -> PlaneMetrics:
        return PlaneMetrics(
            *(float(np.mean([getattr(m, f) for m in self.planes])) for f in ("psnr", "ssim", "mse", "mae"))
        )

    def mean_excluding(self, index: int) -> PlaneMetrics:
        rest = [m for i, m in enumerate(self.planes) if i != index]
        return PlaneMetrics(*(float(np.mean([getattr(m, f) for m in rest])) for f in ("psnr", "ssim", "mse", "mae")))


@dataclass
class EvalReport:
    checkpoint: str
    data: str
    region: list[int]
    offsets: list[float]
    offsets_unit: str
    input_plane: int
    centre_index: int
    methods: dict[str, MethodResult] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # model label -> checkpoint or engine
    seconds: dict[str, float] = field(default_factory=dict)  # model label -> wall time to predict the stack

    @property
    def models(self) -> list[str]:
        return [name for name in self.methods if name not in BASELINES]

    def to_dict(self) -> dict:
        def clean(v: float) -> float | str:
            return v if math.isfinite(v) else "inf"

        out = {k: v for k, v in asdict(self).items() if k != "methods"}
        out["methods"] = {}
        for name, res in self.methods.items():
            out["methods"][name] = {
                "planes": [
                    {"offset": o, **{k: clean(v) for k, v in asdict(m).items()}}
                    for o, m in zip(self.offsets, res.planes)
                ],
                "mean": {k: clean(v) for k, v in asdict(res.mean).items()},
                "mean_out_of_focus": {k: clean(v) for k, v in asdict(res.mean_excluding(self.centre_index)).items()},
            }
        return out

    def verdict(self) -> str:
        """One line: does each model beat bicubic on every plane, and by how much on average."""
        return "; ".join(self._verdict(name) for name in self.models)

    def _verdict(self, name: str) -> str:
        model, bicubic = self.methods[name].planes, self.methods["bicubic"].planes
        below = [f"{self.offsets[i]:+g}" for i, (m, b) in enumerate(zip(model, bicubic)) if m.psnr < b.psnr]
        gain = self.methods[name].mean.psnr - self.methods["bicubic"].mean.psnr
        if not below:
            return f"{name} above bicubic on every plane ({gain:+.2f} dB mean PSNR)"
        return (
            f"{name} BELOW bicubic on {len(below)} of {len(model)} planes (depth {', '.join(below)} "
            f"{self.offsets_unit}); {gain:+.2f} dB mean PSNR"
        )

    def table(self) -> str:
        """Markdown table: one row per focal depth, PSNR/SSIM/MSE/MAE of each method, then the means."""
        names = list(self.methods)
        head = ["depth (" + self.offsets_unit + ")"]
        for n in names:
            head += [f"{n} PSNR", f"{n} SSIM", f"{n} MSE", f"{n} MAE"]
        rows = [head, ["---:"] * len(head)]

        def cells(m: PlaneMetrics) -> list[str]:
            return [_fmt(m.psnr, 2), _fmt(m.ssim, 4), _fmt(m.mse, 1), _fmt(m.mae, 2)]

        for i, off in enumerate(self.offsets):
            row = [f"{off:+g}" + (" (input)" if i == self.centre_index else "")]
            for n in names:
                row += cells(self.methods[n].planes[i])
            rows.append(row)
        mean = ["mean"]
        mean_oof = ["mean, out-of-focus planes"]
        for n in names:
            mean += cells(self.methods[n].mean)
            mean_oof += cells(self.methods[n].mean_excluding(self.centre_index))
        rows += [mean, mean_oof]
        if self.seconds:  # the PSNR column of each model carries its time for this stack
            times = [[_seconds(self.seconds.get(n)), "", "", ""] for n in names]
            rows.append(["seconds for this stack"] + [cell for four in times for cell in four])
        return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def _fmt(v: float, digits: int) -> str:
    return "inf" if not math.isfinite(v) else f"{v:.{digits}f}"


def _seconds(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def evaluate(
    sources: str | Path | Sequence[str | Path],
    data: list[str],
    *,
    region: str | None = None,
    planes: int | None = None,
    focus: str = "sharpest",
    z_step_um: float | None = None,
    intensity: IntensityRule | str = "full",
    degradation: Degradation = Degradation(),
    backend: str = "auto",
    fp16: bool | None = None,
    halo: int = DEFAULT_HALO,
    tile: int | None = None,
    threads: int | None = 1,
    log: Callable[[str], None] = print,
) -> tuple[EvalReport, dict[str, np.ndarray]]:
    """Score one or several models and the baselines on one held-out stack region; returns the
    report and the stacks.

    Each source is a checkpoint (or `default`) or an exported engine folder; its stack is
    predicted by `infer.predict_image` on `backend`, the tiling and engine code `mfpi-run` runs
    (Deep-Z: one pass per plane). One model is named "model"; several are named by architecture,
    and by architecture and source where two share one (`model_labels`). A source given twice is
    evaluated once.
    """
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    sources = [s for i, s in enumerate(sources) if str(s) not in map(str, sources[:i])]  # each once
    if not sources:
        raise MfpiError("nothing to evaluate: give a checkpoint or an engine folder")
    if threads is not None and threads < 0:
        raise MfpiError(f"--threads must be 0 (the runtime's default) or more, got {threads}")
    check_halo(halo)
    stack = open_stack(data, rule=intensity)
    held: _HeldOut | None = None
    runs: list[tuple[str, str]] = []  # (architecture label, source) of each model, in order
    computed: dict[tuple[str, str], np.ndarray] = {}
    took: dict[tuple[str, str], float] = {}
    for source in sources:
        path = resolve_checkpoint(source)
        with open_backend(backend, path, threads=threads, fp16=fp16, log=log) as engine:
            spec = engine.spec
            if spec.channels == 3 and stack.channels == 1:
                raise MfpiError(f"{stack.name}: grey stack, but {source} is an RGB model")
            if held is None:
                held = _held_out(stack, spec.channels, planes or spec.planes, region, focus, z_step_um, degradation)
                if spec.channels == 1 and stack.channels == 3:
                    log(f"{stack.name}: RGB stack, grey model: evaluating its luma (ITU-R 601), as training takes it")
            if spec.planes != held.planes:
                raise MfpiError(
                    f"{source}: the network gives {spec.planes} planes, but {held.planes} target planes were asked for"
                )
            if spec.channels != held.channels:
                raise MfpiError(f"{source}: {spec.channels} channel(s), unlike the first model's {held.channels}")
            card_offsets = list(spec.planes_um)
            sel = held.selection
            same_unit = sel.offsets_in_steps == spec.z_in_steps  # µm and plane steps cannot be compared
            if same_unit and not sel.offsets_in_steps and not np.allclose(card_offsets, sel.offsets_um, atol=1e-3):
                log(f"warning: the stack's plane offsets {list(sel.offsets_um)} differ from {source}'s {card_offsets}")
            r = held.rect
            log(
                f"evaluating {path} on {stack.name} region {r.y0}:{r.y1},{r.x0}:{r.x1} "
                f"(input {held.input.shape[0]}x{held.input.shape[1]} px, {held.planes} planes, input plane "
                f"{sel.input}) with {engine.describe()}"
            )
            start = time.perf_counter()
            runs.append((Architecture.parse(spec.architecture).label, str(source)))
            computed[runs[-1]] = predict_image(held.input, engine, halo=halo, tile=tile)
            took[runs[-1]] = round(time.perf_counter() - start, 2)
    assert held is not None
    labels = model_labels(runs)
    predicted = {labels[run]: planes_of_run for run, planes_of_run in computed.items()}
    seconds = {labels[run]: s for run, s in took.items()}
    report_sources = {labels[run]: run[1] for run in runs}
    c = held.selection.centre_index
    stacks = {
        **predicted,
        "bicubic": np.repeat(upsample_bicubic(held.input, degradation.scale)[None], held.planes, axis=0),
        "in-focus copy": np.repeat(held.target[c][None], held.planes, axis=0),
    }
    r = held.rect
    report = EvalReport(
        ", ".join(str(s) for s in sources),
        stack.name,
        [r.y0, r.y1, r.x0, r.x1],
        list(held.selection.offsets_um),
        "plane steps" if held.selection.offsets_in_steps else "um",
        held.selection.input,
        c,
        sources=report_sources,
        seconds=seconds,
    )
    for name, guess in stacks.items():
        report.methods[name] = MethodResult(stack_metrics(guess, held.target))
    stacks["target"] = held.target
    stacks["input"] = held.input[None]
    return report, stacks


def model_labels(runs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Report labels of (architecture label, source) pairs: "model" for one; else the architecture,
    with the source as given where two of one architecture are compared ("MFPINet (runs/a/best.pth)")."""
    if len(runs) == 1:
        return {runs[0]: "model"}
    names = [name for name, _ in runs]
    clash = {name for name in names if names.count(name) > 1}
    return {(name, source): f"{name} ({source})" if name in clash else name for name, source in runs}


@dataclass(frozen=True)
class _HeldOut:
    """The scored region: its target planes, the degraded input and how the planes were chosen."""

    rect: Box
    selection: PlaneSelection
    target: np.ndarray  # uint8 (Z, H, W, C)
    input: np.ndarray  # uint8 (H/s, W/s, C)
    planes: int
    channels: int


MIN_EVAL_SIDE = 16  # input pixels a side of the smallest region evaluated


def _held_out(
    stack: FocalStack,
    channels: int,
    planes: int,
    region: str | None,
    focus: str,
    z_step_um: float | None,
    degradation: Degradation,
) -> _HeldOut:
    rect = parse_rect(region, stack.height, stack.width)
    step = degradation.scale
    rect = Box(rect.y0, rect.x0, rect.y0 + rect.height // step * step, rect.x0 + rect.width // step * step)
    side = MIN_EVAL_SIDE * step
    if rect.height < side or rect.width < side:
        raise MfpiError(
            f"the evaluation region is {rect.height}x{rect.width} px; it must be at least {side}x{side} "
            f"(an input of {MIN_EVAL_SIDE} px a side: SSIM's 7x7 windows and the blur's borders need room)"
        )
    sel = select_planes(stack, planes=planes, focus=focus, z_step_um=z_step_um)
    target = stack.read(sel.target, rect)
    if target.size and target.min() == target.max():  # a blank region: every score would be inf or nan
        raise MfpiError(
            f"{stack.name}: region {rect.y0}:{rect.y1},{rect.x0}:{rect.x1} of every target plane is one flat "
            f"value ({int(target.min())}): nothing to evaluate against (choose a --region with content)"
        )
    if channels == 1:
        target = to_grey(target)
    inp = degrade_uint8(target[sel.centre_index], degradation)
    return _HeldOut(rect, sel, target, inp, planes, channels)


def plot_psnr(report: EvalReport, path: str | Path) -> Path:
    """PSNR against focal depth for every method (PNG, Agg backend). Infinite values are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, res in report.methods.items():
        pts = [(o, m.psnr) for o, m in zip(report.offsets, res.planes) if math.isfinite(m.psnr)]
        ax.plot(
            [p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{name} (mean {_fmt(res.mean.psnr, 2)} dB)"
        )
    ax.set_xlabel(f"focal depth ({report.offsets_unit})")
    ax.set_ylabel("PSNR (dB, 8-bit)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(report: EvalReport, out: str | Path) -> dict[str, Path]:
    """metrics.json, table.md and psnr_vs_depth.png in `out` (each written then renamed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "metrics.json", "table": out / "table.md", "plot": out / "psnr_vs_depth.png"}
    for key, text in (("json", json.dumps(report.to_dict(), indent=2) + "\n"), ("table", report.table())):
        write_atomic(paths[key], text)
    plot_psnr(report, paths["plot"])
    return paths
