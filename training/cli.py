"""Commands: `mfpi-train` (train_main) and `mfpi-eval` (eval_main).

Also runnable as `python -m training.cli train ...` and `python -m training.cli eval ...`.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from mfpi_deploy.cli.common import Command, Group, user_errors
from mfpi_deploy.degrade import Degradation
from mfpi_deploy.errors import MfpiError
from training.config import TrainConfig
from training.eval_cli import eval_main
from training.patches import Foreground

__all__ = ["train_main", "eval_main", "main"]


def _command_line(ctx: click.Context) -> str:
    """The command that reproduces this run: every option given on the command line, as parsed."""
    head = "python -m training.cli train" if sys.argv and sys.argv[0].endswith("cli.py") else "mfpi-train"
    parts = [head]
    for param in ctx.command.params:
        if (
            not isinstance(param, click.Option)
            or ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE
        ):
            continue
        flag = param.opts[0]
        value = ctx.params[param.name]
        if param.is_flag:
            if value:
                parts.append(flag)
        elif param.multiple:
            for v in value:
                parts += [flag, shlex.quote(str(v))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


@click.command("mfpi-train", cls=Command, context_settings={"show_default": True})
@click.option(
    "--data",
    "data",
    multiple=True,
    help="A stack: one TIFF/OME-TIFF with a Z axis, or comma-separated per-plane files. Repeat for several stacks.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="runs/mfpinet",
    help="Run folder (config, logs, last/ and best/ checkpoints).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out with its saved config, optimizer state and plan (--max-minutes then limits "
    "this sitting only).",
)
@click.option(
    "--extend",
    is_flag=True,
    help="With --resume: change the plan instead (--epochs, --max-steps or a new --max-minutes budget from here; "
    "the rest of the schedule is planned over it).",
)
@click.option(
    "--region", default=None, help="Training+validation region y0:y1,x0:x1 in pixels or fractions, e.g. 0:1.0,0:0.75."
)
@click.option("--planes", default=11, help="Number of target planes (odd), centred on the in-focus plane.")
@click.option("--focus", default="sharpest", help="In-focus (input) plane: 'sharpest', 'middle' or a plane index.")
@click.option("--z-step-um", type=float, default=None, help="Plane spacing when the stack does not record it.")
@click.option("--grey", is_flag=True, help="Train on grey (luma) even if the stacks are RGB.")
@click.option(
    "--intensity",
    type=click.Choice(["auto", "full", "percentile"]),
    default="auto",
    help="16-bit to 8-bit rule (see training.stack.IntensityRule); auto: percentile for dim data, else full.",
)
@click.option(
    "--arch",
    type=click.Choice(["mfpinet", "deepz"]),
    default="mfpinet",
    help="mfpinet, or deepz: the paper's baseline (the Deep-Z network on the bicubic-upsampled input plus a "
    "DPM channel, one random target plane per sample; a stack costs one pass per plane).",
)
@click.option(
    "--model",
    "model_form",
    type=click.Choice(["residual", "paper"]),
    default="residual",
    help="MFPINet's form. residual: bicubic upsampling + the network's correction (starts equal to bicubic); "
    "paper: the authors' tanh output.",
)
@click.option("--width", type=int, default=None, help="Generator width. Default: the paper's (MFPINet 64, Deep-Z 48).")
@click.option(
    "--disc-width",
    default=64,
    help="Discriminator width (the paper's 64; used only with the adversarial term, whose steps then cost "
    "about 10x an L1 step on a CPU).",
)
@click.option(
    "--patch",
    type=int,
    default=None,
    help="Target patch size (input is patch/2). Default: 128, smaller for small regions.",
)
@click.option("--batch", default=4)
@click.option("--epochs", default=20, help="Planned epochs (the run ends earlier when --max-minutes runs out).")
@click.option("--steps-per-epoch", default=500, help="Steps per epoch (a validation at the end of each).")
@click.option(
    "--max-steps",
    type=int,
    default=None,
    help="The plan in steps (replaces --epochs): unlike --max-minutes, the same on a busy or a quiet machine.",
)
@click.option(
    "--lr",
    type=float,
    default=None,
    help="Peak learning rate (Adam, both networks). Default: MFPINet 5e-4 up to width 32, 5e-4 x 32/width "
    "above (2.5e-4 at 64); Deep-Z 1e-4.",
)
@click.option(
    "--schedule",
    type=click.Choice(["cosine", "step"]),
    default="cosine",
    help="cosine: warm-up then cosine decay to the end of the planned run (steps or --max-minutes); "
    "step: the paper's halving every --lr-halve-every epochs.",
)
@click.option("--lr-warmup", default=0.02, help="Share of the run with a linear lr warm-up (cosine).")
@click.option("--lr-final", default=0.01, help="Learning rate at the end of the run, relative to --lr (cosine).")
@click.option("--lr-halve-every", default=2, help="Halve the learning rate every N epochs (step schedule; paper: 2).")
@click.option(
    "--adv-weight",
    default=0.0,
    help="Weight of the adversarial BCE term; 0 = L1 only (default: at equal steps it did not beat L1 on the real "
    "stacks, benchmarks/training/gan_ab). 0.01 is the paper's.",
)
@click.option(
    "--adv-start", default=0.5, help="Share of the run trained with L1 alone before the adversarial term joins."
)
@click.option("--warmup-epochs", default=0, help="Also keep the adversarial term off for this many epochs.")
@click.option(
    "--block",
    type=int,
    default=None,
    help="Block size of the train/validation split. Default: 256, smaller for small regions.",
)
@click.option("--val-fraction", default=0.15, help="Share of the blocks, spread over the region, kept for validation.")
@click.option(
    "--val-patches",
    type=int,
    default=None,
    help="Validation patches. Default: enough to cover the validation blocks twice (16 to 256).",
)
@click.option("--validations", default=10, help="Validation passes over the planned run (and one at each epoch end).")
@click.option(
    "--patience",
    default=4,
    help="Stop early after this many validations in a row without a better best/ (0 = never).",
)
@click.option(
    "--average/--no-average",
    default=True,
    help="Validate and save the weights averaged over the run from the end of the warm-up (default), "
    "or the last step's weights.",
)
@click.option(
    "--snapshots",
    is_flag=True,
    help="Keep the generator of every validation in OUT/snapshots/step-N, to choose among them on data the "
    "run never saw (mfpi-eval each); best/ is still chosen on the validation blocks.",
)
@click.option("--no-augment", is_flag=True, help="Do not flip/rotate patches.")
@click.option("--blur-sigma", default=3.0, help="Gaussian blur sigma of the degradation (paper: 3).")
@click.option("--blur-size", default=5, help="Gaussian window of the degradation (paper: 5; 0 = no blur).")
@click.option("--fg-min-std", default=4.0, help="Foreground: min std (8-bit levels) of an 8x8 cell.")
@click.option("--fg-min-fraction", default=0.25, help="Foreground: min fraction of foreground cells in a patch.")
@click.option("--seed", default=0)
@click.option("--threads", default=1, help="torch threads (0 = torch's default).")
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="Wall-clock budget: the schedule is planned over it, and the run stops cleanly (saving) when it runs out.",
)
@click.option("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N.")
@click.option(
    "--init",
    "init",
    default=None,
    help="Start from this checkpoint's generator weights (fine-tuning; Adam starts afresh, "
    "so use a small --lr such as 1e-5).",
)
@user_errors
def train_main(
    data,
    out,
    resume,
    extend,
    region,
    planes,
    focus,
    z_step_um,
    grey,
    intensity,
    arch,
    model_form,
    width,
    disc_width,
    patch,
    batch,
    epochs,
    steps_per_epoch,
    max_steps,
    lr,
    schedule,
    lr_warmup,
    lr_final,
    lr_halve_every,
    adv_weight,
    adv_start,
    warmup_epochs,
    block,
    val_fraction,
    val_patches,
    validations,
    patience,
    average,
    snapshots,
    no_augment,
    blur_sigma,
    blur_size,
    fg_min_std,
    fg_min_fraction,
    seed,
    threads,
    max_minutes,
    device,
    init,
) -> None:
    """Train MFPINet (or the Deep-Z baseline) on multi-focal stacks: L1 (the paper's adversarial term with
    --adv-weight 0.01) on a schedule fitted to the run, keeping the checkpoint that beats bicubic most."""
    from training.trainer import resume as resume_run
    from training.trainer import train

    if extend and not resume:
        raise MfpiError("--extend changes the plan of a run being resumed: give it with --resume")
    if resume:
        ctx = click.get_current_context()
        given = ctx.get_parameter_source("epochs") == click.core.ParameterSource.COMMANDLINE
        plan = {"out", "resume", "extend", "epochs", "max_steps", "max_minutes"}  # what a resume takes
        ignored = sorted(
            name
            for name in ctx.params
            if name not in plan and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        )
        if ignored:
            raise MfpiError(
                f"--resume continues {out} with its saved config; it takes only --extend, --epochs, --max-steps "
                f"and --max-minutes, not {', '.join('--' + n.replace('_', '-') for n in ignored)}"
            )
        result = resume_run(
            out, extend=extend, epochs=epochs if given else None, max_steps=max_steps, max_minutes=max_minutes
        )
    else:
        cfg = TrainConfig(
            data=list(data),
            out=out,
            region=region,
            planes=planes,
            focus=focus,
            z_step_um=z_step_um,
            grey=grey,
            intensity=intensity,
            arch=arch,
            model=model_form,
            width=width,
            disc_width=disc_width,
            patch=patch,
            batch=batch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            max_steps=max_steps,
            lr=lr,
            schedule=schedule,
            lr_warmup=lr_warmup,
            lr_final=lr_final,
            lr_halve_every=lr_halve_every,
            adv_weight=adv_weight,
            adv_start=adv_start,
            warmup_epochs=warmup_epochs,
            block=block,
            val_fraction=val_fraction,
            val_patches=val_patches,
            validations=validations,
            patience=patience,
            average=average,
            snapshots=snapshots,
            augment=not no_augment,
            degradation=Degradation(blur_size=blur_size, blur_sigma=blur_sigma),
            foreground=Foreground(fg_min_std, fg_min_fraction),
            seed=seed,
            threads=threads or None,
            max_minutes=max_minutes,
            init=init,
            device=device,
            command=_command_line(click.get_current_context()),
        )
        result = train(cfg)
    p = result.progress
    click.echo(
        f"{result.stopped}: {p.global_step} steps ({p.epoch} epoch(s) + {p.step_in_epoch}) in {p.elapsed_s:.0f} s "
        f"wall-clock, {p.cpu_s:.0f} CPU s; best/ from epoch {p.best_epoch if p.best_epoch is not None else '-'}; "
        f"checkpoints in {Path(out) / 'best'} and {Path(out) / 'last'}"
    )


@click.group(cls=Group)
def main() -> None:
    """Training and evaluation of MFPINet."""


main.add_command(train_main, "train")
main.add_command(eval_main, "eval")

if __name__ == "__main__":
    main()
