"""mfpi-run: stream a whole slide through an engine into an 11-plane stack on disk; several slides
(a cohort) or one big slide across Dask workers with --workers / --scheduler."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.cli.common import Command, user_errors
from mfpi_deploy.engine.identity import engine_identity
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.signals import sigterm_as_interrupt
from mfpi_deploy.slide.source import Region
from mfpi_deploy.slide.zstack import parse_plane
from mfpi_deploy.tiling import DEFAULT_HALO, MAX_HALO


def default_output(slide: Path) -> Path:
    """`<name>.mfp.ome.tif` next to the input (name without .ome.tif/.tif/... suffixes)."""
    from mfpi_deploy.cohort.jobs import default_output as cohort_default

    return cohort_default(slide)


def resolve_engine(engine: str | None, backend: str, log: Any) -> Path:
    """The engine folder or checkpoint to run: given, or the bundled default model."""
    if engine:
        return Path(engine)
    if backend == "torch":
        from mfpi_deploy.checkpoint.default import resolve_checkpoint

        return resolve_checkpoint("default")
    from mfpi_deploy.export.default_engine import exported_default_engine

    found = exported_default_engine()  # no torch needed to find an earlier export
    if found is not None:
        return found
    try:
        from mfpi_deploy.export.api import cached_default_engine
    except ImportError:
        raise MfpiError(
            "no --engine given and this build cannot export the default model; pass --engine DIR or --backend torch"
        ) from None
    return Path(cached_default_engine(log=log))


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("slides", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output .ome.tif or .ome.zarr (format follows the name). Default: <slide>.mfp.ome.tif next to the "
    "input. For a cohort: the folder of the outputs (default: next to each slide).",
)
@click.option(
    "--engine", help="Engine folder from mfpi-export (or a checkpoint for --backend torch). Default: the bundled model."
)
@click.option("--backend", default="auto", show_default=True, type=click.Choice([k.value for k in BackendKind]))
@click.option(
    "--precision",
    type=click.Choice([p.value for p in Precision]),
    default=None,
    help="Engine variant to run (fp32, fp16, bf16, int8; exported with mfpi-export --int8/--bf16/--fp16). "
    "Default: auto takes the fastest that passed its accuracy gate; a named backend runs fp32 "
    "(ort-cuda: fp16 when exported).",
)
@click.option("--level", default=0, show_default=True, help="Pyramid level of the slide to read.")
@click.option(
    "--series",
    default=0,
    show_default=True,
    help="Which image of a TIFF holding several (OME-TIFF series); the run names the one it takes.",
)
@click.option(
    "--plane",
    help="Z-stack input (a TIFF/OME-TIFF with a Z axis): the plane to run, a number from 0 or "
    "'sharpest' (highest variance of the Laplacian on a central block).",
)
@click.option("--region", help="Part of the slide to run: x,y,w,h in pixels of that level.")
@click.option("--pixel-size", type=float, help="Input pixel size in µm (overrides the file's metadata).")
@click.option("--convert-channels", is_flag=True, help="Convert grey <-> RGB when the slide and the engine differ.")
@click.option(
    "--input-max",
    type=click.IntRange(1, 65535),
    help="16-bit input value that maps to 255 (default: the file's MaxSampleValue, else 65535).",
)
@click.option(
    "--halo",
    default=DEFAULT_HALO,
    show_default=True,
    help=f"Overlap on every tile side, input pixels (multiple of 8, at most {MAX_HALO}).",
)
@click.option("--tile", type=int, help="Input tile side (default: the engine profile's least wasteful size).")
@click.option("--batch", type=int, help="Tiles per engine call (default: the engine profile's optimum).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads for onnxruntime, OpenVINO and torch (per worker; default with --workers: cores / workers).",
)
@click.option(
    "--streams",
    type=click.IntRange(min=1),
    help="OpenVINO streams: engine tiles computed side by side (default: 2, one per batch in flight). "
    "1 holds one tile's activations instead of two: less memory, somewhat slower (README).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output (or discard a partial run).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run of the same command.")
@click.option(
    "--compression",
    metavar="CODEC[:LEVEL]",
    help="jpeg[:QUALITY], jpegxl[:QUALITY] (OME-TIFF only), zstd[:LEVEL], zlib[:LEVEL] or none. Default: "
    "jpeg:85 for OME-TIFF, each tile checked against the lossless planes and raised to a higher quality "
    "where it falls short; zstd (lossless) for OME-Zarr.",
)
@click.option("--lossless", is_flag=True, help="Bit-exact planes for analysis (OME-TIFF: zlib, OME-Zarr: zstd).")
@click.option(
    "--jpeg-on-gpu",
    is_flag=True,
    help="Encode the OME-TIFF's JPEG tiles on the GPU with nvImageCodec (pip install 'mfpi-deploy[gpu-jpeg]'), "
    "leaving the CPU cores to reading and the rest; the bytes differ from CPU encoding, so a resume keeps it.",
)
@click.option(
    "--sync-every",
    default=5.0,
    show_default=True,
    help="Seconds between syncs of finished tiles to disk (what --resume can skip after a crash).",
)
@click.option(
    "--allow-empty-tiles",
    is_flag=True,
    help="Read tiles the TIFF stores no data for (byte count 0) as black instead of refusing the file.",
)
@click.option(
    "--preview",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[PNG]",
    help="Once the output is in place, write a PNG montage of the input and 5 planes (first, centre, last "
    "and two between) of a region, labelled with z in µm. Default name: <output stem>.preview.png "
    "next to the output.",
)
@click.option(
    "--preview-region",
    help="Region of the preview: x,y,w,h in input pixels (default: the central 256x256; implies --preview).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--format",
    "out_format",
    type=click.Choice(["ome-tif", "ome-zarr"]),
    default="ome-tif",
    show_default=True,
    help="Cohort: format of outputs a manifest does not name.",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    help="Cohort: report to write as REPORT.csv and REPORT.json (default: mfpi-cohort in the output "
    "folder, else in the current folder).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Dask worker processes, one engine each; more than 1 starts a local Dask cluster.",
)
@click.option(
    "--scheduler",
    help="Dask: 'local' (a LocalCluster of --workers processes, the default for --workers > 1), "
    "'local-cuda' (dask-cuda, one worker per GPU) or a running scheduler (tcp://HOST:8786, or a "
    "scheduler file .json).",
)
@click.option(
    "--retries",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="Dask: times a slide may crash its worker before it is recorded as failed.",
)
@click.option(
    "--make-sample",
    type=click.Path(path_type=Path),
    help="Write a simulated sample slide (RGB pyramidal OME-TIFF) to this path and exit.",
)
@click.option("--sample-size", default=1024, show_default=True, help="Side of the --make-sample slide, pixels.")
@user_errors
def main(
    slides: tuple[Path, ...],
    output: Path | None,
    engine: str | None,
    backend: str,
    precision: str | None,
    level: int,
    series: int,
    plane: str | None,
    region: str | None,
    pixel_size: float | None,
    convert_channels: bool,
    input_max: int | None,
    halo: int,
    tile: int | None,
    batch: int | None,
    threads: int | None,
    streams: int | None,
    overwrite: bool,
    resume: bool,
    compression: str | None,
    lossless: bool,
    jpeg_on_gpu: bool,
    sync_every: float,
    allow_empty_tiles: bool,
    preview: str | None,
    preview_region: str | None,
    quiet: bool,
    out_format: str,
    report: Path | None,
    workers: int,
    scheduler: str | None,
    retries: int,
    make_sample: Path | None,
    sample_size: int,
) -> None:
    """Run SLIDES (TIFF, BigTIFF, OME-TIFF, SVS; MRXS/NDPI/... with openslide) through an engine,
    writing the stack of focal planes at twice the resolution.

    One slide file runs alone; several paths, a glob, a folder or a CSV/TSV manifest (columns
    input, output, region, level, pixel_size, input_max, convert_channels) run as a cohort,
    with a report, skipping outputs already finished with the same settings.
    """

    def log(message: str) -> None:
        click.echo(message, err=True)

    if make_sample:
        from mfpi_deploy.run.sample import write_sample

        if slides:
            raise MfpiError("--make-sample writes a sample slide and runs nothing: give no SLIDE with it")

        info = write_sample(make_sample, sample_size, overwrite=overwrite)
        click.echo(f"wrote {make_sample} ({info})")
        return
    look = None  # checked first: in `mfpi-run --preview slide.tif` the slide became the PNG's name
    if preview is not None or preview_region is not None:
        from mfpi_deploy.run.options import PreviewOptions

        look = PreviewOptions(
            path=Path(preview) if preview else None,
            region=Region.parse(preview_region, "--preview-region") if preview_region else None,
        )
    if not slides:
        raise MfpiError("missing SLIDE (or --make-sample PATH)")
    from mfpi_deploy.cohort import ClusterOptions, is_cohort
    from mfpi_deploy.cohort.engine import check_streams
    from mfpi_deploy.run import RunOptions

    if threads is not None and threads < 1:
        raise MfpiError(f"--threads must be at least 1, got {threads}")
    cluster = ClusterOptions(scheduler=scheduler, workers=workers, threads=threads, retries=retries)
    check_streams(BackendKind.parse(backend), streams)
    cohort = is_cohort(slides)
    if preview and cohort:
        raise MfpiError(
            "--preview PNG names one file: with several slides give --preview alone "
            "(each preview goes next to its output)"
        )
    options = RunOptions(  # checks the values before anything is read or written
        level=level,
        series=series,
        plane=parse_plane(plane) if plane is not None else None,
        region=Region.parse(region) if region else None,
        pixel_size_um=pixel_size,
        convert_channels=convert_channels,
        input_max=input_max,
        halo=halo,
        tile=tile,
        batch=batch,
        overwrite=overwrite,
        resume=resume,
        compression=compression,
        lossless=lossless,
        jpeg_on_gpu=jpeg_on_gpu,
        allow_empty_tiles=allow_empty_tiles,
        preview=look,
        progress=not quiet,
        log=log,
        sync_seconds=sync_every,
    )
    if not cohort:
        slide = slides[0]
        if not slide.exists():
            raise MfpiError(f"{slide}: no such file")
        output = output or default_output(slide)
        with single_slide_checked(slide, output, options):
            source = resolve_engine(engine, backend, log)
            options, ref = _engine_ref(source, backend, precision, threads, streams, cluster, options, log)
            with sigterm_as_interrupt():  # kill -> clean stop, resumable
                if cluster.distributed:
                    from mfpi_deploy.cohort import run_slide_distributed

                    summary = run_slide_distributed(slide, output, ref, options, cluster)
                else:
                    from mfpi_deploy.run import run_slide

                    with ref.open(log) as be:
                        summary = run_slide(slide, output, be, options)
        for line in summary.lines():
            click.echo(line)
        return
    created = False
    if output is not None:
        if output.exists() and not output.is_dir():
            raise MfpiError(f"{output}: for several slides -o names a folder, and this is a file")
        if not output.exists() and _names_one_output(output):
            raise MfpiError(
                f"-o {output} names one output file, but several slides each get their own: give a folder "
                f"(their outputs go in it, as <slide>.mfp.ome.tif)"
            )
        try:
            created = not output.exists()
            output.mkdir(exist_ok=True)
        except OSError as exc:
            raise MfpiError(f"cannot create output folder {output} ({exc.strerror or exc})") from None
    try:
        source = resolve_engine(engine, backend, log)
        options, ref = _engine_ref(source, backend, precision, threads, streams, cluster, options, log)
        with sigterm_as_interrupt():  # kill -> clean stop, resumable
            _run_cohort(slides, output, out_format, report, ref, options, cluster, log)
    finally:
        if created and output is not None:
            with contextlib.suppress(OSError):  # a cohort refused before any slide: leave nothing new
                output.rmdir()


def _names_one_output(path: Path) -> bool:
    """True if `path` ends like one output file (.ome.tif, .ome.zarr) rather than a folder of them."""
    from mfpi_deploy.output.layout import OutputFormat

    try:
        OutputFormat.from_path(path)
    except MfpiError:
        return False
    return True


@contextlib.contextmanager
def single_slide_checked(slide: Path, output: Path, options: Any) -> Iterator[None]:
    """Refuse a bad output or a damaged slide before the (possibly long) first-use export of the
    default engine, and hold the output's lock from here: a second run on it is refused at once."""
    from mfpi_deploy.output.layout import OutputFormat
    from mfpi_deploy.run.lock import output_lock
    from mfpi_deploy.run.plan import open_input
    from mfpi_deploy.run.target import check_output_target

    OutputFormat.from_path(output)
    check_output_target(output, options, slide)
    with output_lock(output):
        with open_input(slide, options) as opened:
            if options.region is not None:
                options.region.check(opened.info.height, opened.info.width)
        yield


def _engine_ref(
    source: Path,
    backend: str,
    precision: str | None,
    threads: int | None,
    streams: int | None,
    cluster: Any,
    options: Any,
    log: Any,
) -> tuple[Any, Any]:
    """The run options with the engine's identity (what a resume must match), and how a process
    (this one or a Dask worker) opens that engine."""
    from mfpi_deploy.cohort import EngineRef

    options = dataclasses.replace(options, engine_id=engine_identity(source))
    engine_threads = _engine_threads(cluster, threads, log)
    ref = EngineRef(backend, str(source.resolve()), engine_threads, options.engine_id, precision, streams)
    return options, ref


def _engine_threads(cluster: Any, threads: int | None, log: Any) -> int | None:
    """Engine threads per process: --threads, or for Dask workers cores / workers (with a warning
    when workers x threads oversubscribe the cores)."""
    if not cluster.distributed:
        return threads
    engine_threads, warning = cluster.engine_threads()
    if warning:
        log(warning)
    return engine_threads


def _run_cohort(
    slides: tuple[Path, ...],
    folder: Path | None,
    out_format: str,
    report: Path | None,
    ref: Any,
    options: Any,
    cluster: Any,
    log: Any,
) -> None:
    from mfpi_deploy.cohort import CohortFailed, CohortReport, SlideStatus, collect_jobs, run_cohort
    from mfpi_deploy.output.layout import OutputFormat

    fmt = OutputFormat.OME_ZARR if out_format == "ome-zarr" else OutputFormat.OME_TIFF
    jobs = collect_jobs([str(s) for s in slides], folder=folder, fmt=fmt)
    stem = report or (folder or Path.cwd()) / "mfpi-cohort"
    if stem.suffix.lower() in (".csv", ".json"):
        stem = stem.with_suffix("")
    where = cluster.scheduler or ("local" if cluster.distributed else "in-process")
    book = CohortReport(
        stem,
        jobs,
        about={
            "engine": ref.source,
            "backend": ref.backend,
            "scheduler": where,
            "workers": cluster.workers,
            "threads": ref.threads,
            "streams": ref.streams,
        },
    )
    log(f"cohort: {len(jobs)} slide(s); report {book.csv_path}")
    run_cohort(jobs, ref, options, cluster, book)
    click.echo(f"cohort: {book.summary()}; report {book.csv_path} and {book.json_path.name}")
    failed = book.count(SlideStatus.FAILED)
    if failed:
        raise CohortFailed(f"{failed} of {len(jobs)} slide(s) failed; reasons in {book.csv_path}")


if __name__ == "__main__":
    main()
