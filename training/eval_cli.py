"""`mfpi-eval`: per-plane PSNR/SSIM/MSE/MAE of a checkpoint and two baselines on a held-out region."""
from __future__ import annotations

import click

from mfpi_deploy.cli.common import user_errors
from training.degrade import Degradation


@click.command("mfpi-eval", context_settings={"show_default": True})
@click.argument("checkpoint")
@click.option("--data", required=True, help="Held-out stack: one TIFF/OME-TIFF, or comma-separated per-plane files.")
@click.option("--region", default=None, help="Held-out region y0:y1,x0:x1 in pixels or fractions (e.g. 0:1.0,0.75:1.0).")
@click.option("--planes", type=int, default=None, help="Target planes (default: the model's).")
@click.option("--focus", default="sharpest", help="In-focus (input) plane: 'sharpest', 'middle' or an index.")
@click.option("--z-step-um", type=float, default=None)
@click.option("--intensity", type=click.Choice(["full", "percentile"]), default="full")
@click.option("--blur-sigma", default=3.0)
@click.option("--blur-size", default=5)
@click.option("--tile", default=256, help="Input tile size of the tiled inference.")
@click.option("--threads", default=1)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for metrics.json, table.md, psnr_vs_depth.png.")
@user_errors
def eval_main(checkpoint, data, region, planes, focus, z_step_um, intensity, blur_sigma, blur_size, tile, threads, out) -> None:
    """Evaluate CHECKPOINT (a checkpoint path or 'default') per focal plane, as the paper's Table II."""
    from training.evaluate import evaluate, write_report

    paths = [p.strip() for p in data.split(",") if p.strip()]
    report, _ = evaluate(checkpoint, paths, region=region, planes=planes, focus=focus, z_step_um=z_step_um,
                         intensity=intensity, degradation=Degradation(blur_size=blur_size, blur_sigma=blur_sigma),
                         tile=tile, threads=threads or None, log=lambda m: click.echo(m, err=True))
    click.echo(report.table(), nl=False)
    if out:
        written = write_report(report, out)
        click.echo(f"wrote {', '.join(str(p) for p in written.values())}", err=True)


if __name__ == "__main__":
    eval_main()
