"""Plan: everything a slide run decides before its first tile (tiling, batches, codec, pyramid,
layout and the settings a resume must match), from the slide's header and the engine's facts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfpi_deploy.backends.base import EngineFacts
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import ome_tiff, zarr_stack
from mfpi_deploy.output.codecs import Codec, floor_db, parse_codec
from mfpi_deploy.output.layout import OutputFormat, StackLayout
from mfpi_deploy.output.pyramid import PyramidBuilder, PyramidGrid, TileSink, level_shapes, tile_side
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.preview import preview_box
from mfpi_deploy.run.state import RunState, partial_dir
from mfpi_deploy.slide import PixelRule, Region, SlideInputError, TileSource, open_slide, pixel_rule
from mfpi_deploy.slide.zstack import SHARPEST
from mfpi_deploy.tiling import OUTPUT_TILE, TilePlan, batches, choose_plan


@dataclass(frozen=True)
class PlannedRun:
    """Everything decided before the first tile: tiling, batches, output layout and settings.

    Picklable, so the tasks of a distributed run get the one plan their client made.
    """

    input: Path
    output: Path
    format: OutputFormat
    level: int
    series: int
    plane: int | None  # the z plane of a Z-stack, resolved ('sharpest' -> its number); None: 2D
    allow_empty_tiles: bool
    region: Region | None
    rule: PixelRule
    plan: TilePlan
    batch: int
    layout: StackLayout
    settings: dict[str, Any]  # what decides the output (format and codec included): a resume and the record match it
    codec: Codec  # how every output tile is encoded (staged encoded: part of the settings)
    floor_db: float  # a lossy tile's PSNR against the lossless planes must reach this
    jpeg_on_gpu: bool  # JPEG tiles encoded with nvImageCodec (part of the settings: its bytes are not the CPU's)
    grid: PyramidGrid  # the pyramid's levels and tile side
    description: str  # one line: slide, pixels, tiles, batch, backend, compression

    @property
    def groups(self) -> list[range]:
        """The plan's fixed tile groups (batches), by index."""
        return batches(self.plan.n_tiles, self.batch)

    @property
    def state(self) -> RunState:
        return RunState(partial_dir(self.output))

    def sink(self) -> TileSink:
        """Where this run's finished tiles go: encoded TIFF tiles, or the staged Zarr's chunks."""
        if self.format is OutputFormat.OME_TIFF:
            encoder: dict[str, Any] = {}
            if self.jpeg_on_gpu:
                from mfpi_deploy.output.gpu_jpeg import GpuJpegEncoder

                encoder["encoder"] = GpuJpegEncoder()
            return ome_tiff.TiffTileStore(self.state.tiles, self.grid, self.codec, self.floor_db, **encoder)
        return zarr_stack.ZarrSink(self.state.stack, self.grid, self.codec, self.floor_db, self.state.scores)

    def pyramid(self) -> PyramidBuilder:
        return PyramidBuilder(self.grid, self.state.pyramid, self.sink())


def check_gpu_jpeg(fmt: OutputFormat, codec: Codec) -> None:
    """--jpeg-on-gpu needs JPEG tiles in an OME-TIFF and nvImageCodec installed: refused before any tile."""
    if fmt is not OutputFormat.OME_TIFF or codec.name != "jpeg":
        raise MfpiError(f"--jpeg-on-gpu encodes JPEG tiles of an OME-TIFF, not {fmt.value} {codec.label}")
    from mfpi_deploy.output.gpu_jpeg import load_nvimgcodec

    load_nvimgcodec()


def choose_codec(fmt: OutputFormat, options: RunOptions) -> Codec:
    """The run's codec: --compression, else lossless (--lossless) or the format's default."""
    if options.compression:  # RunOptions refused a lossy one with --lossless
        codec = parse_codec(options.compression)
    elif fmt is OutputFormat.OME_ZARR:
        codec = parse_codec(DEFAULT_ZARR_CODEC)
    else:
        codec = parse_codec(LOSSLESS_TIFF_CODEC if options.lossless else DEFAULT_TIFF_CODEC)
    if fmt is OutputFormat.OME_ZARR and codec.name == "jpegxl":
        raise MfpiError("JPEG-XL is for OME-TIFF only; OME-Zarr takes zstd, zlib, jpeg or none")
    return codec


# Defaults (README, "Output size"; benchmarks/run/results/codecs.md): JPEG q85 for OME-TIFF, as scanners
# store slides (Q70-Q80), with the per-tile fidelity floor raising the quality where content needs it;
# 3.1 MB per input Mpx on the sample slide at 48.3 dB against lossless. Lossless deflate (opens
# everywhere) with --lossless; zstd for OME-Zarr (JPEG chunks are not in the NGFF standard).
DEFAULT_TIFF_CODEC = "jpeg"  # at its default level, 85 (output.codecs.DEFAULT_LEVEL)


LOSSLESS_TIFF_CODEC = "zlib"


DEFAULT_ZARR_CODEC = "zstd"


def open_input(input_path: str | Path, options: RunOptions) -> Any:
    """The slide as the run options select it (level, series, Z plane, empty tiles), opened lazily."""
    return open_slide(
        input_path,
        options.level,
        series=options.series,
        plane=options.plane,
        allow_empty_tiles=options.allow_empty_tiles,
    )


def plan_run(input_path: str | Path, output_path: str | Path, engine: EngineFacts, options: RunOptions) -> PlannedRun:
    """Read the slide's header and decide tiles, batch, layout and settings (no tile is read)."""
    input_path, output = Path(input_path), Path(output_path)
    fmt = OutputFormat.from_path(output)
    spec = engine.spec
    if spec.needs_dpm:
        raise MfpiError("a per-plane Deep-Z engine cannot write a stack: open it as a stack engine (PlaneSweep)")
    with open_input(input_path, options) as slide:
        info = slide.info
        for warning in slide.warnings:
            options.log(f"warning: {input_path.name}: {warning}")
        if info.series_count > 1:
            options.log(
                f"{input_path.name}: the file holds {info.series_count} images (series); running series "
                f"{info.series} ({info.width}x{info.height}); pick another with --series N"
            )
        if info.plane is not None:
            how = " (the sharpest: variance of the Laplacian)" if options.plane == SHARPEST else ""
            options.log(f"{input_path.name}: a Z-stack of {info.planes} planes; running plane {info.plane}{how}")
        rule = pixel_rule(
            info.dtype,
            info.samples,
            spec.channels,
            convert_channels=options.convert_channels,
            max_value=options.input_max or info.max_value,
            where=str(input_path),
        )
        source = TileSource(slide, rule, options.region)
        if options.preview is not None:
            preview_box(options.preview, source.region)  # refuse a bad --preview-region before any tile
        codec = choose_codec(fmt, options)
        if options.jpeg_on_gpu:
            check_gpu_jpeg(fmt, codec)
        plan, batch = choose_plan(
            source.height,
            source.width,
            options.halo,
            spec.profiles,
            spec.stride,
            options.tile,
            spec.scale,
            host_bound=engine.host_cores == 0,
        )
        if options.tile is not None and plan.tile != options.tile:
            options.log(f"{input_path.name}: --tile {options.tile} is more than this slide needs; {plan.tile} px tiles")
        if options.batch is not None:
            if options.batch < 1 or not any(p.accepts(plan.tile, plan.tile, options.batch) for p in spec.profiles):
                raise MfpiError(f"batch {options.batch} of {plan.tile} px tiles is outside the engine's profiles")
            batch = options.batch
        pixel_size = options.pixel_size_um or info.pixel_size_um
        if pixel_size is None:
            options.log(
                f"warning: {input_path.name}: the input's pixel size is unknown (no metadata); the output "
                "has no physical x/y size (pass --pixel-size UM to set it)"
            )
        grid = PyramidGrid(
            level_shapes(spec.scale * source.height, spec.scale * source.width),
            spec.scale * plan.core,
            tile_side(spec.scale * plan.core),
        )
        model_psnr = options.model_psnr_db if options.model_psnr_db is not None else engine.identity.model_psnr_db
        floor = floor_db(model_psnr)
        layout = StackLayout(
            planes=spec.planes,
            channels=spec.channels,
            height=spec.scale * source.height,
            width=spec.scale * source.width,
            chunk=spec.scale * plan.core,
            pixel_size_um=pixel_size / spec.scale if pixel_size else None,
            planes_um=tuple(float(z) for z in spec.planes_um),
            name=input_path.stem,
            z_in_steps=spec.z_in_steps,
        )
        settings = run_settings(input_path, info, options, plan, batch, layout, engine, rule.describe())
        settings.update(output_format=fmt.value, compression=codec.label, tile_side=grid.tile)
        if not codec.lossless:
            settings["floor_db"] = round(floor, 3)
        if options.jpeg_on_gpu:  # absent otherwise, so records of CPU-encoded runs still match
            settings["jpeg_encoder"] = "nvimgcodec"
        series = f" series {info.series}" if info.series_count > 1 else ""
        series += f" plane {info.plane} of {info.planes}" if info.plane is not None else ""
        description = (
            f"{input_path.name}: {info.width}x{info.height} {info.format}{series} level {info.level}, "
            f"{rule.describe()}; region {source.width}x{source.height} -> "
            f"{plan.n_tiles} tiles of {plan.tile} px (halo {plan.halo}, "
            f"{100 * plan.halo_overhead:.1f}% of computed pixels in halos), batch {batch}, "
            f"{engine.describe()}; {fmt.value} {codec.label} in {grid.tile} px tiles"
            + (
                f" (a --tile whose core is a multiple of {OUTPUT_TILE // spec.scale} px gives {OUTPUT_TILE}+)"
                if grid.tile < OUTPUT_TILE
                else ""
            )
            + ("" if codec.lossless else f" (each tile >= {floor:.1f} dB against lossless, else raised)")
        )
        return PlannedRun(
            input=input_path,
            output=output,
            format=fmt,
            level=options.level,
            series=options.series,
            plane=info.plane,
            allow_empty_tiles=options.allow_empty_tiles,
            region=options.region,
            rule=rule,
            plan=plan,
            batch=batch,
            layout=layout,
            settings=settings,
            codec=codec,
            floor_db=floor,
            jpeg_on_gpu=options.jpeg_on_gpu,
            grid=grid,
            description=description,
        )


@contextlib.contextmanager
def open_source(run: PlannedRun) -> Iterator[TileSource]:
    """The planned slide's engine-ready windows (reopened: a task may run on another machine)."""
    with open_slide(
        run.input, run.level, series=run.series, plane=run.plane, allow_empty_tiles=run.allow_empty_tiles
    ) as slide:
        source = TileSource(slide, run.rule, run.region)
        if (source.height, source.width) != (run.plan.height, run.plan.width):
            raise SlideInputError(
                f"{run.input}: changed since the run was planned "
                f"({source.width}x{source.height}, planned {run.plan.width}x{run.plan.height})"
            )
        yield source


def run_settings(
    input_path: Path,
    info: Any,
    options: RunOptions,
    plan: TilePlan,
    batch: int,
    layout: StackLayout,
    engine: EngineFacts,
    rule: str,
) -> dict:
    """Everything that decides the output; a resume must match all of it."""
    stat = input_path.stat()
    spec = engine.spec
    return {
        "input": str(input_path.resolve()),
        "input_bytes": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "series": info.series,
        "level": info.level,
        "region": None if options.region is None else list(vars(options.region).values()),
        "pixels": rule,
        "tile": plan.tile,
        "halo": plan.halo,
        "batch": batch,
        "engine": {
            "kind": engine.kind.value,
            "architecture": spec.architecture,
            "channels": spec.channels,
            "planes": spec.planes,
            "precision": spec.precision,
            "id": options.engine_id or engine.identity.id,
            # a GPU's floats are not the CPU's: a resume must compute where the run began (absent on
            # the CPU, so records of earlier CPU runs still match)
            **({"device": engine.device} if engine.device != "cpu" else {}),
        },
        "layout": layout.to_dict(),
        # a Z-stack's plane; absent for 2D input, so records of earlier 2D runs still match
        **({"plane": info.plane} if info.plane is not None else {}),
    }
