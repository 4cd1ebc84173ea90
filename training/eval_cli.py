"""`mfpi-eval`: per-plane PSNR/SSIM/MSE/MAE of one or several models (MFPINet, Deep-Z) and two
baselines on a held-out region, side by side."""

from __future__ import annotations

from pathlib import Path

import click

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.cli.common import Command, user_errors
from mfpi_deploy.degrade import Degradation
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.tiling import DEFAULT_HALO


@click.command("mfpi-eval", cls=Command, context_settings={"show_default": True})
@click.argument("checkpoints", nargs=-1)
@click.option(
    "--engine",
    "engines",
    multiple=True,
    help="Evaluate an exported engine folder (repeat for several; with or instead of CHECKPOINTS).",
)
@click.option(
    "--backend",
    default="auto",
    type=click.Choice([k.value for k in BackendKind]),
    help="Backend that runs the model (auto: torch for a checkpoint, the fastest for an engine).",
)
@click.option("--fp16", is_flag=True, default=None, help="Run the engine's FP16 graph (onnxruntime backends).")
@click.option("--data", required=True, help="Held-out stack: one TIFF/OME-TIFF, or comma-separated per-plane files.")
@click.option(
    "--region", default=None, help="Held-out region y0:y1,x0:x1 in pixels or fractions (e.g. 0:1.0,0.75:1.0)."
)
@click.option("--planes", type=int, default=None, help="Target planes (default: the model's).")
@click.option("--focus", default="sharpest", help="In-focus (input) plane: 'sharpest', 'middle' or an index.")
@click.option("--z-step-um", type=float, default=None)
@click.option(
    "--intensity",
    type=click.Choice(["auto", "full", "percentile"]),
    default="auto",
    help="16-bit to 8-bit rule; use the one the model was trained with (see mfpi-train --intensity).",
)
@click.option("--blur-sigma", default=3.0)
@click.option("--blur-size", default=5)
@click.option("--halo", default=DEFAULT_HALO, help="Tile overlap, input pixels (as mfpi-run).")
@click.option(
    "--tile", type=int, default=None, help="Input tile side (default: the engine profile's choice, as mfpi-run)."
)
@click.option("--threads", default=1)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for metrics.json, table.md, psnr_vs_depth.png.",
)
@user_errors
def eval_main(
    checkpoints,
    engines,
    backend,
    fp16,
    data,
    region,
    planes,
    focus,
    z_step_um,
    intensity,
    blur_sigma,
    blur_size,
    halo,
    tile,
    threads,
    out,
) -> None:
    """Evaluate CHECKPOINTS (checkpoint paths or 'default') and --engine DIRs per focal plane, side by
    side, as the paper's Table II: e.g. an MFPINet and a Deep-Z run folder's best/."""
    from training.evaluate import evaluate, write_report

    sources = list(checkpoints) + list(engines)
    if not sources:
        raise MfpiError("give one or more CHECKPOINTS or --engine DIR")
    paths = [p.strip() for p in data.split(",") if p.strip()]
    if out:  # before the (possibly long) evaluation: a folder it cannot write is refused now
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MfpiError(f"--out {out}: cannot create that folder ({exc.strerror or exc})") from None
    report, _ = evaluate(
        sources,
        paths,
        region=region,
        planes=planes,
        focus=focus,
        z_step_um=z_step_um,
        intensity=intensity,
        degradation=Degradation(blur_size=blur_size, blur_sigma=blur_sigma),
        backend=backend,
        fp16=fp16,
        halo=halo,
        tile=tile,
        threads=threads or None,
        log=lambda m: click.echo(m, err=True),
    )
    click.echo(report.table(), nl=False)
    click.echo(report.verdict(), err=True)
    if out:
        written = write_report(report, out)
        click.echo(f"wrote {', '.join(str(p) for p in written.values())}", err=True)


if __name__ == "__main__":
    eval_main()
