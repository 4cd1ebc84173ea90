"""Per-plane evaluation of a checkpoint against two baselines, in the layout of the paper's Table II.

Methods, all scored by the same code on the same held-out region:
- model: the network's stack from the degraded in-focus plane, predicted through the tiling
  and backend code that `mfpi-run` runs (a checkpoint on torch, or an exported engine);
- bicubic: the degraded input upsampled x2 by bicubic interpolation, copied to every plane;
- in-focus copy: the true full-resolution in-focus plane copied to every plane (an upper
  bound for any method that does not refocus; its in-focus row is exact, PSNR inf).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.checkpoint.default import resolve_checkpoint
from mfpi_deploy.degrade import Degradation, degrade_uint8, upsample_bicubic
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import write_atomic
from mfpi_deploy.infer import predict_image
from mfpi_deploy.tiling import DEFAULT_HALO, Box
from training.data import parse_rect, to_grey
from training.metrics import PlaneMetrics, stack_metrics
from training.planes import select_planes
from training.stack import IntensityRule, open_stack

METHODS = ("model", "bicubic", "in-focus copy")


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
        """One line: does the model beat bicubic on every plane, and by how much on average."""
        model, bicubic = self.methods["model"].planes, self.methods["bicubic"].planes
        below = [f"{self.offsets[i]:+g}" for i, (m, b) in enumerate(zip(model, bicubic)) if m.psnr < b.psnr]
        gain = self.methods["model"].mean.psnr - self.methods["bicubic"].mean.psnr
        if not below:
            return f"model above bicubic on every plane ({gain:+.2f} dB mean PSNR)"
        return (
            f"model BELOW bicubic on {len(below)} of {len(model)} planes (depth {', '.join(below)} "
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
        return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def _fmt(v: float, digits: int) -> str:
    return "inf" if not math.isfinite(v) else f"{v:.{digits}f}"


def evaluate(
    source: str | Path,
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
    """Score a model and the baselines on one held-out stack region; returns the report and the stacks.

    `source` is a checkpoint (or `default`) or an exported engine folder; the model's stack is
    predicted by `infer.predict_image` on `backend`, the tiling and engine code `mfpi-run` runs.
    """
    path = resolve_checkpoint(source)
    with open_backend(backend, path, threads=threads, fp16=fp16, log=log) as engine:
        spec = engine.spec
        if spec.needs_dpm:
            raise MfpiError(f"{source}: evaluation takes an MFPINet model, not {spec.architecture}")
        planes = planes or spec.planes
        if planes != spec.planes:
            raise MfpiError(
                f"{source}: the network gives {spec.planes} planes, but {planes} target planes were asked for"
            )
        stack = open_stack(data, rule=intensity)
        if spec.channels == 3 and stack.channels == 1:
            raise MfpiError(f"{stack.name}: grey stack, but {source} is an RGB model")
        rect = parse_rect(region, stack.height, stack.width)
        step = degradation.scale
        rect = Box(rect.y0, rect.x0, rect.y0 + rect.height // step * step, rect.x0 + rect.width // step * step)
        if rect.height == 0 or rect.width == 0:
            raise MfpiError(f"evaluation region must be at least {step}x{step} pixels")
        sel = select_planes(stack, planes=planes, focus=focus, z_step_um=z_step_um)
        target = stack.read(sel.target, rect)
        if spec.channels == 1:
            target = to_grey(target)
        card_offsets = list(spec.planes_um)
        if not sel.offsets_in_steps and not np.allclose(card_offsets, sel.offsets_um, atol=1e-3):
            log(f"warning: the stack's plane offsets {list(sel.offsets_um)} differ from the model's {card_offsets}")
        c = sel.centre_index
        inp = degrade_uint8(target[c], degradation)
        log(
            f"evaluating {path} on {stack.name} region {rect.y0}:{rect.y1},{rect.x0}:{rect.x1} "
            f"(input {inp.shape[0]}x{inp.shape[1]} px, {planes} planes, input plane {sel.input}) "
            f"with {engine.describe()}"
        )
        stacks = {
            "model": predict_image(inp, engine, halo=halo, tile=tile),
            "bicubic": np.repeat(upsample_bicubic(inp, degradation.scale)[None], planes, axis=0),
            "in-focus copy": np.repeat(target[c][None], planes, axis=0),
        }
    report = EvalReport(
        str(source),
        stack.name,
        [rect.y0, rect.y1, rect.x0, rect.x1],
        list(sel.offsets_um),
        "plane steps" if sel.offsets_in_steps else "um",
        sel.input,
        c,
    )
    for name in METHODS:
        report.methods[name] = MethodResult(stack_metrics(stacks[name], target))
    stacks["target"] = target
    stacks["input"] = inp[None]
    return report, stacks


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
