"""`python -m mfpi_deploy.cli.synth OUT.ome.tif --size 1024 --seed 0`: write one simulated multi-focal stack."""

from __future__ import annotations

import click

from mfpi_deploy.cli.common import Command, user_errors
from mfpi_deploy.synth.simulate import SimConfig, plane_positions_um, simulate_stack, write_stack


@click.command(cls=Command, context_settings={"show_default": True})
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--size", default=1024, help="Height and width in pixels (0.243 um each).")
@click.option("--seed", default=0)
@click.option("--planes", default=11)
@click.option("--z-step-um", default=2.7)
@user_errors
def main(out: str, size: int, seed: int, planes: int, z_step_um: float) -> None:
    """Simulate a multi-focal bright-field cytology stack and write it as OME-TIFF."""
    cfg = SimConfig(height=size, width=size, seed=seed, planes=planes, z_step_um=z_step_um)
    write_stack(out, simulate_stack(cfg), plane_positions_um(planes, z_step_um), cfg.pixel_size_um)
    click.echo(f"wrote {out}: {planes} planes of {size}x{size} RGB, seed {seed}")


if __name__ == "__main__":
    main()
