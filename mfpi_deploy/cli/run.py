"""mfpi-run: stream a whole slide through an engine into an 11-plane stack on disk."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.cli.common import user_errors
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.signals import sigterm_as_interrupt
from mfpi_deploy.slide.source import Region
from mfpi_deploy.tiling import DEFAULT_HALO


def default_output(slide: Path) -> Path:
    """`<name>.mfp.ome.tif` next to the input (name without .ome.tif/.tif/... suffixes)."""
    name = slide.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".svs", ".ndpi", ".mrxs", ".scn", ".bif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = slide.stem
    return slide.with_name(f"{name}.mfp.ome.tif")


def engine_identity(source: Path) -> str:
    """Path plus a hash of the engine's manifest (or card): what a resume must match."""
    for name in ("manifest.json", "card.json"):
        f = source / name if source.is_dir() else source.with_suffix(".json")
        if f.is_file():
            return f"{source.resolve()}#{hashlib.sha256(f.read_bytes()).hexdigest()[:16]}"
    return str(source.resolve())


def resolve_engine(engine: str | None, backend: str, log: Any) -> Path:
    """The engine folder or checkpoint to run: given, or the bundled default model."""
    if engine:
        return Path(engine)
    if backend == "torch":
        from mfpi_deploy.checkpoint.default import resolve_checkpoint

        return resolve_checkpoint("default")
    try:
        from mfpi_deploy.export.api import cached_default_engine
    except ImportError:
        raise MfpiError("no --engine given and this build cannot export the default model; "
                        "pass --engine DIR or --backend torch") from None
    return Path(cached_default_engine(log=log))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("slide", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output .ome.tif or .ome.zarr (format follows the name). Default: <slide>.mfp.ome.tif next to the input.")
@click.option("--engine", help="Engine folder from mfpi-export (or a checkpoint for --backend torch). Default: the bundled model.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice([k.value for k in BackendKind]))
@click.option("--precision", type=click.Choice([p.value for p in Precision]), default=None,
              help="Engine variant to run (fp32, fp16, bf16, int8; exported with mfpi-export --int8/--bf16/--fp16). "
                   "Default: auto takes the fastest that passed its accuracy gate; a named backend runs fp32 "
                   "(ort-cuda: fp16 when exported).")
@click.option("--level", default=0, show_default=True, help="Pyramid level of the slide to read.")
@click.option("--region", help="Part of the slide to run: x,y,w,h in pixels of that level.")
@click.option("--pixel-size", type=float, help="Input pixel size in µm (overrides the file's metadata).")
@click.option("--convert-channels", is_flag=True, help="Convert grey <-> RGB when the slide and the engine differ.")
@click.option("--input-max", type=click.IntRange(1, 65535),
              help="16-bit input value that maps to 255 (default: the file's MaxSampleValue, else 65535).")
@click.option("--halo", default=DEFAULT_HALO, show_default=True, help="Overlap on every tile side, input pixels (multiple of 8).")
@click.option("--tile", type=int, help="Input tile side (default: the engine profile's least wasteful size).")
@click.option("--batch", type=int, help="Tiles per engine call (default: the engine profile's optimum).")
@click.option("--threads", type=int, help="CPU threads for onnxruntime, OpenVINO and torch.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (or discard a partial run).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run of the same command.")
@click.option("--compression", default="zlib", show_default=True, type=click.Choice(["zlib", "lzw", "zstd", "none"]),
              help="OME-TIFF compression (zlib and lzw open everywhere).")
@click.option("--sync-every", default=5.0, show_default=True,
              help="Seconds between syncs of finished tiles to disk (what --resume can skip after a crash).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--make-sample", type=click.Path(path_type=Path),
              help="Write a simulated sample slide (RGB pyramidal OME-TIFF) to this path and exit.")
@click.option("--sample-size", default=1024, show_default=True, help="Side of the --make-sample slide, pixels.")
@user_errors
def main(slide: Path | None, output: Path | None, engine: str | None, backend: str, precision: str | None, level: int, region: str | None,
         pixel_size: float | None, convert_channels: bool, input_max: int | None, halo: int, tile: int | None, batch: int | None,
         threads: int | None, overwrite: bool, resume: bool, compression: str, sync_every: float, quiet: bool,
         make_sample: Path | None, sample_size: int) -> None:
    """Run SLIDE (TIFF, BigTIFF, OME-TIFF, SVS; MRXS/NDPI/... with openslide) through an engine,
    writing the stack of focal planes at twice the resolution."""
    def log(message: str) -> None:
        click.echo(message, err=True)

    if make_sample:
        from mfpi_deploy.run.sample import write_sample

        info = write_sample(make_sample, sample_size, overwrite=overwrite)
        click.echo(f"wrote {make_sample} ({info})")
        return
    if slide is None:
        raise MfpiError("missing SLIDE (or --make-sample PATH)")
    if not slide.exists():
        raise MfpiError(f"{slide}: no such file")
    output = output or default_output(slide)
    options_region = Region.parse(region) if region else None
    from mfpi_deploy.backends.select import open_backend
    from mfpi_deploy.run import RunOptions, run_slide
    from mfpi_deploy.run.pipeline import check_output_target

    # Refuse a bad output before the (possibly long) first-use export of the default engine.
    check_output_target(output, RunOptions(overwrite=overwrite, resume=resume))
    source = resolve_engine(engine, backend, log)
    options = RunOptions(
        level=level, region=options_region, pixel_size_um=pixel_size, convert_channels=convert_channels,
        input_max=input_max,
        halo=halo, tile=tile, batch=batch, overwrite=overwrite, resume=resume,
        compression=None if compression == "none" else compression,
        engine_id=engine_identity(source), progress=not quiet, log=log, sync_seconds=sync_every,
    )
    with sigterm_as_interrupt(), open_backend(backend, source, threads=threads, log=log,
                                                   precision=precision) as be:
        summary = run_slide(slide, output, be, options)  # kill -> clean stop, resumable
    for line in summary.lines():
        click.echo(line)


if __name__ == "__main__":
    main()
