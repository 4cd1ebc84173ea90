"""Commands: `mfpi-train` (train_main) and `mfpi-eval` (eval_main).

Also runnable as `python -m training.cli train ...` and `python -m training.cli eval ...`.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from mfpi_deploy.cli.common import user_errors
from training.config import TrainConfig
from training.degrade import Degradation
from training.patches import Foreground


def _command_line() -> str:
    """The command as typed: `python -m training.cli train ...` or `mfpi-train ...`."""
    if not sys.argv:
        return ""
    head = ["python", "-m", "training.cli"] if sys.argv[0].endswith(("cli.py", "-m")) else [Path(sys.argv[0]).name]
    return " ".join(shlex.quote(a) for a in [*head, *sys.argv[1:]])


@click.command("mfpi-train", context_settings={"show_default": True})
@click.option("--data", "data", multiple=True, help="A stack: one TIFF/OME-TIFF with a Z axis, or comma-separated per-plane files. Repeat for several stacks.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/mfpinet", help="Run folder (config, logs, last/ and best/ checkpoints).")
@click.option("--resume", is_flag=True, help="Continue the run in --out with its saved config, optimizer state and schedule.")
@click.option("--region", default=None, help="Training+validation region y0:y1,x0:x1 in pixels or fractions, e.g. 0:1.0,0:0.75.")
@click.option("--planes", default=11, help="Number of target planes (odd), centred on the in-focus plane.")
@click.option("--focus", default="sharpest", help="In-focus (input) plane: 'sharpest', 'middle' or a plane index.")
@click.option("--z-step-um", type=float, default=None, help="Plane spacing when the stack does not record it.")
@click.option("--grey", is_flag=True, help="Train on grey (luma) even if the stacks are RGB.")
@click.option("--intensity", type=click.Choice(["full", "percentile"]), default="full", help="16-bit to 8-bit rule (see training.stack.IntensityRule).")
@click.option("--width", default=64, help="Generator width (paper: 64).")
@click.option("--disc-width", default=64, help="Discriminator width (paper: 64).")
@click.option("--patch", default=128, help="Target patch size (input is patch/2).")
@click.option("--batch", default=4)
@click.option("--epochs", default=20)
@click.option("--steps-per-epoch", default=500)
@click.option("--lr", default=1e-4)
@click.option("--lr-halve-every", default=2, help="Halve the learning rate every N epochs.")
@click.option("--adv-weight", default=0.01, help="Weight of the adversarial BCE term (0 = L1 only).")
@click.option("--warmup-epochs", default=0, help="L1-only epochs before the discriminator joins.")
@click.option("--block", default=256, help="Block size of the train/validation split.")
@click.option("--val-fraction", default=0.15)
@click.option("--val-patches", default=32)
@click.option("--no-augment", is_flag=True, help="Do not flip/rotate patches.")
@click.option("--blur-sigma", default=3.0, help="Gaussian blur sigma of the degradation (paper: 3).")
@click.option("--blur-size", default=5, help="Gaussian window of the degradation (paper: 5; 0 = no blur).")
@click.option("--fg-min-std", default=4.0, help="Foreground: min std (8-bit levels) of an 8x8 cell.")
@click.option("--fg-min-fraction", default=0.25, help="Foreground: min fraction of foreground cells in a patch.")
@click.option("--seed", default=0)
@click.option("--threads", default=1, help="torch threads (0 = torch's default).")
@click.option("--max-minutes", type=float, default=None, help="Wall-clock budget; stops cleanly and saves.")
@user_errors
def train_main(data, out, resume, region, planes, focus, z_step_um, grey, intensity, width, disc_width, patch, batch,
               epochs, steps_per_epoch, lr, lr_halve_every, adv_weight, warmup_epochs, block, val_fraction, val_patches,
               no_augment, blur_sigma, blur_size, fg_min_std, fg_min_fraction, seed, threads, max_minutes) -> None:
    """Train MFPINet on multi-focal stacks (the paper's GAN recipe by default)."""
    from training.trainer import resume as resume_run
    from training.trainer import train

    if resume:
        ctx = click.get_current_context()
        given = ctx.get_parameter_source("epochs") == click.core.ParameterSource.COMMANDLINE
        result = resume_run(out, epochs=epochs if given else None, max_minutes=max_minutes)
    else:
        cfg = TrainConfig(
            data=list(data), out=out, region=region, planes=planes, focus=focus, z_step_um=z_step_um, grey=grey,
            intensity=intensity, width=width, disc_width=disc_width, patch=patch, batch=batch, epochs=epochs,
            steps_per_epoch=steps_per_epoch, lr=lr, lr_halve_every=lr_halve_every, adv_weight=adv_weight,
            warmup_epochs=warmup_epochs, block=block, val_fraction=val_fraction, val_patches=val_patches,
            augment=not no_augment, degradation=Degradation(blur_size=blur_size, blur_sigma=blur_sigma),
            foreground=Foreground(fg_min_std, fg_min_fraction), seed=seed, threads=threads or None,
            max_minutes=max_minutes, command=_command_line())
        result = train(cfg)
    p = result.progress
    click.echo(f"{result.stopped}: {p.epoch} epoch(s) + {p.step_in_epoch} step(s), best validation PSNR "
               f"{p.best_psnr:.2f} dB (epoch {p.best_epoch}); checkpoints in {Path(out) / 'best'} and {Path(out) / 'last'}")


@click.group()
def main() -> None:
    """Training and evaluation of MFPINet."""


main.add_command(train_main, "train")

try:  # evaluation is added below once defined
    from training.eval_cli import eval_main

    main.add_command(eval_main, "eval")
except ImportError:  # pragma: no cover
    pass

if __name__ == "__main__":
    main()
