"""mfpi-export: checkpoint -> engine folder (ONNX fp32; optional FP16, INT8 and BF16 variants, TensorRT engine)."""

from __future__ import annotations

from pathlib import Path

import click

from mfpi_deploy.cli.common import Command, user_errors


def _default_out(checkpoint: str) -> Path:
    path = Path(checkpoint)
    name = path.stem if path.suffix in (".pth", ".pt", ".safetensors") else path.name
    return Path("engines") / (name or "model")


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="Engine folder to write (default: engines/NAME).",
)
@click.option("--fp16", is_flag=True, help="Also write model.fp16.onnx, gated against fp32 (PSNR per plane).")
@click.option(
    "--trt",
    is_flag=True,
    help="Also build a TensorRT engine from model.fp16.onnx (implies --fp16; needs an NVIDIA GPU, tensorrt, pycuda).",
)
@click.option(
    "--int8",
    is_flag=True,
    help="Also write model.int8.onnx (QDQ static quantization for CPUs: "
    "onnxruntime and OpenVINO), gated against fp32 on every runtime installed.",
)
@click.option(
    "--bf16",
    is_flag=True,
    help="Also record the bf16 variant (OpenVINO's bf16 inference hint on "
    "model.onnx), gated against fp32 (emulated on CPUs without bf16).",
)
@click.option(
    "--tile",
    "tiles",
    type=int,
    multiple=True,
    default=(384,),
    show_default=True,
    help="Tile side(s) in input pixels, multiples of the network stride; one TensorRT profile each.",
)
@click.option(
    "--batch",
    "batches",
    type=int,
    multiple=True,
    default=(1, 4),
    show_default=True,
    help="Batch size(s) the TensorRT profiles are tuned for (the largest is the maximum).",
)
@click.option("--opset", type=int, default=None, help="ONNX opset (default: 20).")
@click.option("--workspace-gb", type=float, default=4.0, show_default=True, help="TensorRT workspace limit.")
@click.option(
    "--exporter",
    type=click.Choice(["dynamo", "torchscript"]),
    default="dynamo",
    show_default=True,
    help="torch.onnx exporter.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Real images (TIFF) for the accuracy gates and INT8 calibration (default: the images "
    "shipped with the package).",
)
@click.option(
    "--min-psnr",
    type=float,
    default=45.0,
    show_default=True,
    help="FP16 gate: lowest per-plane PSNR (dB) of fp16 against fp32.",
)
@click.option(
    "--int8-min-psnr",
    type=float,
    default=45.0,
    show_default=True,
    help="INT8 gate: lowest per-plane PSNR (dB) of int8 against fp32.",
)
@click.option(
    "--bf16-min-psnr",
    type=float,
    default=45.0,
    show_default=True,
    help="BF16 gate: lowest per-plane PSNR (dB) of bf16 against fp32.",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for the checks.")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="CHECKPOINT is an engine folder: rebuild its TensorRT engine for this GPU and TensorRT.",
)
@user_errors
def main(
    checkpoint: str,
    out: Path | None,
    fp16: bool,
    trt: bool,
    int8: bool,
    bf16: bool,
    tiles: tuple[int, ...],
    batches: tuple[int, ...],
    opset: int | None,
    workspace_gb: float,
    exporter: str,
    calibration: tuple[Path, ...],
    min_psnr: float,
    int8_min_psnr: float,
    bf16_min_psnr: float,
    threads: int | None,
    force: bool,
    rebuild: bool,
) -> None:
    """Export CHECKPOINT (a checkpoint folder, NAME.safetensors, an authors' .pth, or `default`)."""
    from mfpi_deploy.export.api import ExportOptions, export_model, rebuild_engine
    from mfpi_deploy.export.versions import DEFAULT_OPSET

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    if rebuild:
        click.echo(rebuild_engine(Path(checkpoint), workspace_gb=workspace_gb, log=log))
        return
    options = ExportOptions(
        fp16=fp16 or trt,
        trt=trt,
        int8=int8,
        bf16=bf16,
        tiles=tuple(tiles),
        batches=tuple(batches),
        opset=opset or DEFAULT_OPSET,
        workspace_gb=workspace_gb,
        force=force,
        exporter=exporter,
        calibration=tuple(calibration),
        fp16_min_psnr=min_psnr,
        int8_min_psnr=int8_min_psnr,
        bf16_min_psnr=bf16_min_psnr,
        threads=threads,
    )
    click.echo(export_model(checkpoint, out or _default_out(checkpoint), options, log=log))


if __name__ == "__main__":
    main()
