"""Stream a slide through an engine into an 11-plane stack on disk, resumable.

The tile loop is `infer.stream_tiles` (reading, inference and writing overlap); this module
adds what a slide run needs around it: the plan (`plan_run`), the output layout, the
partial-run folder, the journal of finished batches, the progress bar, and the final rename.
A distributed run (`mfpi_deploy.cohort`) uses the same pieces, each task streaming a share
of the batches (`stream_batches`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mfpi_deploy.backends.base import Backend, EngineFacts
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import replace_dir
from mfpi_deploy.infer.stream import stream_tiles
from mfpi_deploy.output import ome_tiff, zarr_stack
from mfpi_deploy.output.codecs import Codec, CodecReport, floor_db, parse_codec
from mfpi_deploy.output.layout import OutputFormat, StackLayout
from mfpi_deploy.output.pyramid import PyramidBuilder, PyramidGrid, TileSink, level_shapes, tile_side
from mfpi_deploy.run.lock import output_lock
from mfpi_deploy.run.options import PreviewOptions, RunOptions, RunSummary
from mfpi_deploy.run.preview import preview_box, write_preview
from mfpi_deploy.run.state import (
    Journal,
    RunState,
    mismatches,
    partial_dir,
    record_differences,
    remove_record,
    write_record,
)
from mfpi_deploy.slide import PixelRule, Region, SlideInputError, TileSource, open_slide, pixel_rule
from mfpi_deploy.slide.zstack import SHARPEST
from mfpi_deploy.tiling import OUTPUT_TILE, Tile, TilePlan, batches, choose_plan


class RunInterrupted(MfpiError):
    """Ctrl-C or SIGTERM during a run; the partial run can be resumed."""

    exit_code = 130


class RunFailed(MfpiError):
    """A run that stopped part-way for a reason outside the input (disk full, engine error)."""


class RunSuperseded(MfpiError):
    """Another run (a resumed client, a newer command) owns this partial run now; this one stops."""


def owner_check(state: RunState, token: str) -> Callable[[], None]:
    """A check for the tile loop: raises RunSuperseded once `token` no longer owns the partial run,
    so writers of a killed or interrupted client stop at their next batch."""

    def check() -> None:
        if state.owner() != token:
            raise RunSuperseded(f"{state.root} is now run by another process; this one stopped")

    return check


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
    settings: dict[str, Any]  # what decides the output; a resume must match all of it
    codec: Codec  # how every output tile is encoded (staged encoded: part of the settings)
    floor_db: float  # a lossy tile's PSNR against the lossless planes must reach this
    grid: PyramidGrid  # the pyramid's levels and tile side
    description: str  # one line: slide, pixels, tiles, batch, backend, compression

    @property
    def groups(self) -> list[range]:
        """The plan's fixed tile groups (batches), by index."""
        return batches(self.plan.n_tiles, self.batch)

    @property
    def state(self) -> RunState:
        return RunState(partial_dir(self.output))

    @property
    def made_with(self) -> dict[str, Any]:
        """What the finished output's record holds: the settings (format and codec included)."""
        return self.settings

    def sink(self) -> TileSink:
        """Where this run's finished tiles go: encoded TIFF tiles, or the staged Zarr's chunks."""
        if self.format is OutputFormat.OME_TIFF:
            return ome_tiff.TiffTileStore(self.state.tiles, self.grid, self.codec, self.floor_db)
        return zarr_stack.ZarrSink(self.state.stack, self.grid)

    def pyramid(self) -> PyramidBuilder:
        return PyramidBuilder(self.grid, self.state.pyramid, self.sink())


def choose_codec(fmt: OutputFormat, options: RunOptions) -> Codec:
    """The run's codec: --compression, else lossless (--lossless) or the format's default."""
    if options.compression:
        codec = parse_codec(options.compression)
        if options.lossless and not codec.lossless:
            raise MfpiError(f"--lossless contradicts --compression {codec.label}")
    elif fmt is OutputFormat.OME_ZARR:
        codec = parse_codec(DEFAULT_ZARR_CODEC)
    else:
        codec = parse_codec(LOSSLESS_TIFF_CODEC if options.lossless else DEFAULT_TIFF_CODEC)
    if fmt is OutputFormat.OME_ZARR and codec.name == "jpegxl":
        raise MfpiError("JPEG-XL is for OME-TIFF only; OME-Zarr takes zstd, zlib, jpeg or none")
    return codec


# Defaults (README, "Output size"): JPEG q90 with the per-tile fidelity floor for OME-TIFF, like the
# scanners' own files; lossless deflate (opens everywhere) with --lossless; zstd for OME-Zarr.
DEFAULT_TIFF_CODEC = "jpeg:90"
LOSSLESS_TIFF_CODEC = "zlib"
DEFAULT_ZARR_CODEC = "zstd"


def plan_run(input_path: str | Path, output_path: str | Path, engine: EngineFacts, options: RunOptions) -> PlannedRun:
    """Read the slide's header and decide tiles, batch, layout and settings (no tile is read)."""
    input_path, output = Path(input_path), Path(output_path)
    fmt = OutputFormat.from_path(output)
    spec = engine.spec
    if spec.needs_dpm:
        raise MfpiError("a per-plane Deep-Z engine cannot write a stack: open it as a stack engine (PlaneSweep)")
    with open_slide(
        input_path,
        options.level,
        series=options.series,
        plane=options.plane,
        allow_empty_tiles=options.allow_empty_tiles,
    ) as slide:
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
        plan, batch = choose_plan(
            source.height,
            source.width,
            options.halo,
            spec.profiles,
            spec.stride,
            options.tile,
            spec.scale,
        )
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
        floor = floor_db(options.model_psnr_db)
        layout = StackLayout(
            planes=spec.planes,
            channels=spec.channels,
            height=spec.scale * source.height,
            width=spec.scale * source.width,
            chunk=spec.scale * plan.core,
            pixel_size_um=pixel_size / spec.scale if pixel_size else None,
            planes_um=tuple(float(z) for z in spec.planes_um),
            name=input_path.stem,
        )
        settings = run_settings(input_path, info, options, plan, batch, layout, engine, rule.describe())
        settings.update(output_format=fmt.value, compression=codec.label, tile_side=grid.tile)
        if not codec.lossless:
            settings["floor_db"] = round(floor, 3)
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


def run_slide(
    input_path: str | Path, output_path: str | Path, backend: Backend, options: RunOptions | None = None
) -> RunSummary:
    """Run `backend` over the slide at `input_path`, writing the stack to `output_path`.

    The format follows the output name (.ome.zarr or .ome.tif). The output appears only when
    complete; until then everything lives in `<output>.partial/`, which `resume` continues.
    With `skip_finished`, an output already made with the same settings is kept (`skipped`).
    """
    options = options or RunOptions()
    output = Path(output_path)
    check_output_target(output, options)
    with output_lock(output):  # one run per output, held until the output is in place
        return _run_locked(Path(input_path), output, backend, options)


def _run_locked(input_path: Path, output: Path, backend: Backend, options: RunOptions) -> RunSummary:
    started = time.perf_counter()
    run = plan_run(input_path, output, backend.facts(), options)
    if check_finished(run, options):
        return skipped_summary(run, backend.describe(), time.perf_counter() - started)
    state = run.state
    done, resumed = start_state(run, options)
    check = owner_check(state, state.claim())
    groups = run.groups
    todo = [b for b in range(len(groups)) if b not in done]
    done_tiles = sum(len(groups[b]) for b in done if b < len(groups))
    options.log(run.description)
    loop_start = time.perf_counter()
    with tile_errors(state, resumed), open_source(run) as source:
        with state.open_journal() as journal:
            stream_batches(source, run, todo, backend, journal, options, done_tiles, check)
    loop_seconds = time.perf_counter() - loop_start
    report = finish_run(run, options, clean=resumed)
    return run_summary(
        run, backend.describe(), done_tiles, time.perf_counter() - started, loop_seconds, resumed, report
    )


def run_summary(
    run: PlannedRun,
    backend: str,
    done_tiles: int,
    seconds: float,
    inference_seconds: float,
    resumed: bool,
    codec: CodecReport | None = None,
) -> RunSummary:
    """The summary of a finished run that computed all tiles but `done_tiles` (kept from before)."""
    return RunSummary(
        output=run.output,
        backend=backend,
        tiles=run.plan.n_tiles,
        tiles_computed=run.plan.n_tiles - done_tiles,
        tile=run.plan.tile,
        batch=run.batch,
        halo=run.plan.halo,
        seconds=seconds,
        inference_seconds=inference_seconds,
        input_megapixels=run.plan.height * run.plan.width / 1e6,
        halo_overhead=run.plan.halo_overhead,
        resumed=resumed,
        codec=codec,
        output_bytes=output_bytes(run.output),
    )


def output_bytes(path: Path) -> int:
    """Bytes of a finished output file or folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def skipped_summary(run: PlannedRun, backend: str, seconds: float) -> RunSummary:
    """The summary of a run that kept an output already finished with the same settings."""
    return RunSummary(
        output=run.output,
        backend=backend,
        tiles=run.plan.n_tiles,
        tiles_computed=0,
        tile=run.plan.tile,
        batch=run.batch,
        halo=run.plan.halo,
        seconds=seconds,
        inference_seconds=0.0,
        input_megapixels=run.plan.height * run.plan.width / 1e6,
        halo_overhead=run.plan.halo_overhead,
        skipped=True,
    )


def start_state(run: PlannedRun, options: RunOptions) -> tuple[set[int], bool]:
    """Check the free space for what is left to write, then create or resume the partial run
    (prepare_state); returns the finished batches and whether it resumed."""
    state, groups = run.state, run.groups
    resuming = options.resume and state.exists()
    left = 1.0 - (len(state.done_batches()) / len(groups) if resuming and groups else 0.0)
    check_free_space(run.output, run.layout, run.format, left, options.log)
    return prepare_state(run, options)


def check_finished(run: PlannedRun, options: RunOptions) -> bool:
    """True if the output exists and `skip_finished` keeps it (its record matches this run's
    settings); MfpiError if it exists and may not be replaced; False: compute it."""
    if not (run.output.exists() or run.output.is_symlink()):
        return False
    differ = record_differences(run.output, run.made_with)
    if options.skip_finished and differ == []:
        return True
    if options.overwrite:
        return False
    why = "" if differ is None or not options.skip_finished else f" (made with different {', '.join(differ)})"
    raise MfpiError(f"{run.output} exists{why}; pass --overwrite to replace it")


@contextlib.contextmanager
def tile_errors(state: RunState, resumed: bool) -> Iterator[None]:
    """Errors of the tile loop as one-line MfpiErrors that say how to go on; bad input removes a new run."""
    try:
        yield
    except KeyboardInterrupt:
        zarr_stack.settle_io()
        raise RunInterrupted(
            f"interrupted; {state.root} keeps the finished tiles: rerun the same command with --resume to continue"
        ) from None
    except SlideInputError:
        zarr_stack.settle_io()
        if not resumed:
            state.remove()
        raise
    except OSError as exc:
        zarr_stack.settle_io()
        if exc.errno == errno.ENOSPC:
            raise RunFailed(
                f"no space left on device while writing {state.root}; free space and rerun "
                f"with --resume (or delete that folder)"
            ) from None
        raise RunFailed(f"write failed ({exc}); finished tiles are kept in {state.root}, rerun with --resume") from None


def finish_run(run: PlannedRun, options: RunOptions, *, clean: bool = False) -> CodecReport:
    """All tiles written: the pyramid's last tiles, the final file, rename, record. `clean` first
    removes temporary chunk files a killed writer may have left (resumed and distributed runs).
    Returns what the codec check found (every tile of the output, earlier runs' included)."""
    state, output = run.state, run.output
    try:
        if clean and state.stack.exists():
            zarr_stack.remove_temporaries(state.stack)
        run.pyramid().complete()
        report = finish_output(run, options)
    except KeyboardInterrupt:
        zarr_stack.settle_io()
        raise RunInterrupted(
            f"interrupted while finishing {output}; all tiles are kept in {state.root}: "
            f"rerun the same command with --resume to finish"
        ) from None
    except OSError as exc:
        zarr_stack.settle_io()
        reason = "no space left on device" if exc.errno == errno.ENOSPC else str(exc)
        raise RunFailed(
            f"{reason} while finishing {output}; all tiles are kept in {state.root}, rerun with --resume"
        ) from None
    if options.preview is not None:
        write_run_preview(run, options.preview, options.log)
    return report


def write_run_preview(run: PlannedRun, preview: PreviewOptions, log: Callable[[str], None]) -> None:
    """The PNG montage of the finished output (after it is in place), reading its planes lazily."""
    try:
        with open_source(run) as source:
            path = write_preview(run.output, source, run.layout.planes_um, preview)
    except OSError as exc:
        raise RunFailed(
            f"{run.output} is complete, but its preview could not be written ({exc.strerror or exc})"
        ) from None
    log(f"preview: {path}")


def check_output_target(output: Path, options: RunOptions) -> None:
    """Refuse an existing output (unless overwrite, or skip_finished: decided once planned) and a
    folder we cannot write into."""
    if output.exists() and not (options.overwrite or options.skip_finished):
        raise MfpiError(f"{output} exists; pass --overwrite to replace it")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise MfpiError(f"output folder {parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".mfpi-probe-"):
            pass
    except OSError as exc:
        raise MfpiError(f"cannot write into output folder {parent} ({exc.strerror or exc})") from None


# Free-space check: a stack that cannot fit even at this compression ratio is refused.
MAX_COMPRESSION_RATIO = 100


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def stack_bytes(layout: StackLayout, fmt: OutputFormat, share_left: float = 1.0) -> int:
    """Uncompressed bytes a run still writes: the staged stack (level 0 and its pyramid, the
    unfinished share of it) and, for an OME-TIFF, the file assembled from it at the end (both
    exist until the final rename)."""
    level0 = layout.planes * layout.channels * layout.height * layout.width
    stack = level0 * 4 // 3  # 2x pyramid: 1 + 1/4 + 1/16 + ...
    return int(stack * share_left) + (stack if fmt is OutputFormat.OME_TIFF else 0)


def check_free_space(output: Path, layout: StackLayout, fmt: OutputFormat, share_left: float, log: Any) -> None:
    """Before the first tile: refuse an output that cannot fit in the free space even if it
    compressed MAX_COMPRESSION_RATIO:1; warn when it fits only if it compresses well."""
    folder = output.parent if str(output.parent) else Path(".")
    need = stack_bytes(layout, fmt, share_left)
    free = shutil.disk_usage(folder).free
    if need <= free:
        return
    ratio = need / max(free, 1)
    what = f"the output needs about {_human(need)} uncompressed and {folder} has {_human(free)} free"
    if ratio > MAX_COMPRESSION_RATIO:
        raise MfpiError(
            f"not enough disk space: {what}, so it would have to compress better than "
            f"{MAX_COMPRESSION_RATIO}:1; free space or write elsewhere (-o)"
        )
    log(f"warning: {what}; it fits only if it compresses better than {ratio:.1f}:1")


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
            "id": options.engine_id,
        },
        "layout": layout.to_dict(),
        # a Z-stack's plane; absent for 2D input, so records of earlier 2D runs still match
        **({"plane": info.plane} if info.plane is not None else {}),
    }


def prepare_state(run: PlannedRun, options: RunOptions) -> tuple[set[int], bool]:
    """Start a fresh partial run or pick up a matching one; returns (finished batches, resumed)."""
    state, settings = run.state, run.settings
    if state.root.exists():
        if options.resume and state.exists():
            saved = state.settings()
            differ = mismatches(saved, settings)
            if differ:
                raise MfpiError(
                    f"cannot resume {state.root}: it was started with different "
                    f"{', '.join(differ)}; pass --overwrite to start over"
                )
            done = state.done_batches()
            options.log(f"resuming {state.root}: {len(done)} batch(es) already done")
            return done, True
        if not options.overwrite and state.exists():
            raise MfpiError(
                f"a partial run exists at {state.root}; pass --resume to continue it or --overwrite to start over"
            )
        state.remove()
    elif options.resume:
        options.log(f"nothing to resume at {state.root}; starting a new run")
    state.create(settings)
    if run.format is OutputFormat.OME_ZARR:
        zarr_stack.create_stack(state.stack, run.layout, run.grid, run.codec)
    else:
        state.tiles.mkdir()
    return set(), False


def finish_output(run: PlannedRun, options: RunOptions) -> CodecReport:
    """Turn the finished partial run into the output under its final name (rename last), then
    record what it was made with (the old record goes first: a crash leaves none, never a wrong one)."""
    state, output = run.state, run.output
    if run.format is OutputFormat.OME_TIFF:
        tmp = state.root / "output.ome.tif"
        index = ome_tiff.assemble_ome_tiff(
            state.tiles, run.grid, run.layout, run.codec, tmp, uuid=output_uuid(run.made_with)
        )
        report = CodecReport.of(run.codec, run.floor_db, index.values())
        remove_record(output)
        replace_dir(tmp, output)
    else:
        report = CodecReport.of(run.codec, run.floor_db, [])
        remove_record(output)
        replace_dir(state.stack, output)  # the old output stays until the new one is in place
    write_record(output, run.made_with)
    state.remove()
    if report.below_floor:
        options.log(f"warning: {output}: {report.line()}; pass --lossless for bit-exact planes")
    return report


def output_uuid(made_with: dict) -> str:
    """The OME UUID of an output, derived from what made it (input, settings, engine), so a rerun
    or a distributed run of the same settings writes the same bytes."""
    blob = json.dumps(made_with, sort_keys=True)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mfpi-deploy:" + hashlib.sha256(blob.encode()).hexdigest()))


class _Progress:
    """Journals finished batches (after syncing their chunks), moves the progress bar and calls
    `on_tiles`; thread-safe. `check` runs after each batch and may raise to stop the loop."""

    def __init__(
        self,
        journal: Journal,
        plan: TilePlan,
        options: RunOptions,
        done_tiles: int,
        todo_tiles: int,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.journal = journal
        self.sync_seconds = options.sync_seconds
        self.on_tiles = options.on_tiles
        self.todo_tiles = todo_tiles
        self.check = check
        self.lock = threading.Lock()
        self.pending: list[int] = []
        self.last_sync = time.monotonic()
        self.started = time.perf_counter()
        self.tiles = 0
        self.mp_per_tile = plan.core * plan.core / 1e6
        self.bar = tqdm(
            total=plan.n_tiles,
            initial=done_tiles,
            unit="tile",
            disable=not options.progress,
            dynamic_ncols=True,
            smoothing=0.1,
            desc="tiles",
        )
        if self.on_tiles is not None:
            self.on_tiles(0, todo_tiles)

    def batch_done(self, index: int, tiles: int) -> None:
        with self.lock:
            self.pending.append(index)
            if time.monotonic() - self.last_sync >= self.sync_seconds:
                self._flush()
            self.tiles += tiles
            self.bar.update(tiles)
            rate = self.tiles * self.mp_per_tile / (time.perf_counter() - self.started)
            self.bar.set_postfix_str(f"{rate:.3f} MP/s", refresh=False)
            if self.on_tiles is not None:
                self.on_tiles(tiles, self.todo_tiles)
        if self.check is not None:
            self.check()

    def _flush(self) -> None:
        # The sinks fsync what they write before a batch is reported, so the journal may name
        # it at once (power-loss safe); the journal itself is fsynced once per interval.
        if self.pending:
            self.journal.record(self.pending)
            self.pending = []
        self.last_sync = time.monotonic()

    def close(self) -> None:
        """Journal what was written (also after Ctrl-C or an error: it is kept for --resume)."""
        with self.lock:
            try:
                self._flush()
            finally:
                self.bar.close()


def stream_batches(
    source: TileSource,
    run: PlannedRun,
    todo: Sequence[int],
    backend: Backend,
    journal: Journal,
    options: RunOptions,
    done_tiles: int = 0,
    check: Callable[[], None] | None = None,
    build_upper: bool = True,
) -> None:
    """Run batches `todo` of the planned slide into its partial stack, journaling each written batch.

    Every finished engine tile is encoded at once, with its pyramid levels; with `build_upper`
    the levels above it are built as soon as their tiles are complete (a distributed task leaves
    them to the client's finish, which builds whatever is missing)."""
    groups = run.groups
    builder = run.pyramid()
    progress = _Progress(journal, run.plan, options, done_tiles, sum(len(groups[b]) for b in todo), check)

    def write(t: Tile, planes: np.ndarray) -> None:
        builder.add_engine_tile(t.row, t.col, planes, build=build_upper)

    try:
        stream_tiles(
            source,
            run.plan,
            groups,
            todo,
            backend,
            write,
            on_batch=progress.batch_done,
            queue_batches=options.queue_batches,
            writers=options.writers or os.cpu_count() or 1,
        )
    finally:
        progress.close()
