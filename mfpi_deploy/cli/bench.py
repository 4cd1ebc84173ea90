"""mfpi-bench: MFPINet against Deep-Z per-plane inference (Table III), measured here."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from mfpi_deploy.cli.common import Command, user_errors
from mfpi_deploy.errors import MfpiError


def _positive(name: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise MfpiError(f"{name} {value}: must be at least {minimum}")


def _check_writable(path: Path) -> None:
    """Fail before a long run, not after it, if an output file cannot be written."""
    if path.is_dir():
        raise MfpiError(f"{path}: is a folder, expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MfpiError(f"cannot create folder {path.parent} ({exc.strerror or exc})") from None
    if not os.access(path.parent, os.W_OK):
        raise MfpiError(f"cannot write into folder {path.parent}")


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--backend",
    "backends",
    multiple=True,
    metavar="KIND",
    help="trt, ort-cuda, openvino, ort-cpu, torch or auto (default: every available backend). Repeatable.",
)
@click.option(
    "--tile",
    type=int,
    default=None,
    help="MFPINet input tile side (output is 2x; Deep-Z runs at 2x). Default 384 (the paper's).",
)
@click.option("--batch", type=int, default=None, help="Tiles per pass (default 1).")
@click.option("--runs", type=int, default=None, help="Timed rounds, each one stack of each model (default 10).")
@click.option("--warmup", type=int, default=None, help="Untimed rounds first (default 2).")
@click.option("--threads", type=int, default=None, help="CPU threads for torch / onnxruntime (default: all).")
@click.option("--quick", is_flag=True, help="Small tile (128 -> 256) and 3 runs, for CPUs; the output says so.")
@click.option("--fp16", is_flag=True, help="FP16 engines on GPU backends (TensorRT, onnxruntime CUDA).")
@click.option(
    "--precisions",
    metavar="LIST",
    default=None,
    help="Variants to run on the CPU backends, e.g. fp32,int8,bf16 (default: every one the backend runs: "
    "ort-cpu fp32, fp16, int8; openvino fp32, bf16, int8). Each is a row with its accuracy gate; "
    "bf16 without bfloat16 arithmetic in the CPU is reported as skipped.",
)
@click.option(
    "--pipeline",
    is_flag=True,
    help="Also run the MFPINet engine inside the mfpi-run pipeline on a generated slide "
    "and report its efficiency against the bare engine.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write results as JSON.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write results as Markdown.")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False), help="Write a PNG latency chart.")
@click.option(
    "--engines-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep exported engines here and reuse them (default: a temporary folder).",
)
@click.option(
    "--note",
    "notes",
    multiple=True,
    metavar="TEXT",
    help="A note recorded with the results (e.g. 'shared machine'). Repeatable.",
)
@click.option("--width", type=int, default=None, hidden=True, help="Test only: narrow both networks.")
@click.option("--matmul-size", type=int, default=None, hidden=True, help="Side of the matmul reference.")
@user_errors
def main(
    backends: tuple[str, ...],
    tile: int | None,
    batch: int | None,
    runs: int | None,
    warmup: int | None,
    threads: int | None,
    quick: bool,
    fp16: bool,
    precisions: str | None,
    pipeline: bool,
    json_path: str | None,
    md_path: str | None,
    chart_path: str | None,
    engines_dir: str | None,
    notes: tuple[str, ...],
    width: int | None,
    matmul_size: int | None,
) -> None:
    """Measure MFPINet (one pass per stack) against Deep-Z (one pass per plane) on every backend.

    Both networks, and MFPINet's residual form, run with random weights at the paper's
    architecture (timing does not depend on weights), interleaved round by round, for the
    same output volume. On ort-cpu and openvino each precision variant (fp32, fp16, int8,
    bf16) is a row, beside its accuracy gate (lowest per-plane PSNR against fp32) from the
    engine's manifest, for MFPINet and Deep-Z.
    """
    from mfpi_deploy.bench.chart import save_chart
    from mfpi_deploy.bench.engines import parse_precisions, select_backends
    from mfpi_deploy.bench.report import format_table, to_json, to_markdown
    from mfpi_deploy.bench.suite import BenchSettings, quick_settings, run_benchmark
    from mfpi_deploy.bench.workload import check_tile
    from mfpi_deploy.fileio import write_atomic

    for name, value, low in (
        ("--batch", batch, 1),
        ("--runs", runs, 1),
        ("--warmup", warmup, 0),
        ("--threads", threads, 1),
        ("--width", width, 4),
        ("--matmul-size", matmul_size, 16),
    ):
        _positive(name, value, low)
    if tile is not None:
        check_tile(tile)
    if width is not None and width % 4:
        raise MfpiError(f"--width {width}: must be a multiple of 4 (Deep-Z repeats its 4 input channels)")
    overrides = {
        "tile": tile,
        "batch": batch,
        "runs": runs,
        "warmup": warmup,
        "threads": threads,
        "fp16": fp16,
        "pipeline": pipeline,
        "width": width,
        "matmul_size": matmul_size,
        "precisions": parse_precisions(precisions),
    }
    if quick:
        settings = quick_settings(**overrides)
    else:
        settings = BenchSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    if chart_path and Path(chart_path).suffix.lower() != ".png":
        raise MfpiError(f"--chart {chart_path}: the chart is a PNG image, name it .png")
    for path in (json_path, md_path, chart_path):
        if path:
            _check_writable(Path(path))
    kinds, skipped = select_backends(backends)
    if not kinds:
        raise MfpiError("no backend available: " + "; ".join(f"{kind}: {reason}" for kind, reason in skipped.items()))
    for kind, reason in skipped.items():
        click.echo(f"skipping {kind}: {reason}", err=True)
    if quick:
        click.echo(
            f"quick mode: tile {settings.tile} -> {settings.out_tile}, {settings.runs} runs "
            "(not the paper's 384 -> 768)",
            err=True,
        )
    if engines_dir:
        Path(engines_dir).mkdir(parents=True, exist_ok=True)
    prog = "mfpi-bench" if Path(sys.argv[0]).name == "mfpi-bench" else "python -m mfpi_deploy.cli.bench"
    command = f"{prog} {shlex.join(sys.argv[1:])}"
    report = run_benchmark(
        settings,
        kinds,
        command=command,
        skipped=skipped,
        work_dir=Path(engines_dir) if engines_dir else None,
        notes=notes,
        strict=bool(backends) and "auto" not in backends,
        log=lambda msg: click.echo(msg, err=True),
    )
    click.echo(format_table(report), nl=False)
    if json_path:
        write_atomic(json_path, to_json(report))
        click.echo(f"wrote {json_path}", err=True)
    if md_path:
        write_atomic(md_path, to_markdown(report))
        click.echo(f"wrote {md_path}", err=True)
    if chart_path:
        save_chart(report, chart_path)
        click.echo(f"wrote {chart_path}", err=True)


if __name__ == "__main__":
    main()
