"""Stream a slide through an engine into an 11-plane stack on disk, resumable.

The tile loop is `infer.stream_tiles` (reading, inference and writing overlap); this module
adds what a slide run needs around it: the output layout, the partial-run folder, the
journal of finished batches, the progress bar, and the final rename.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import replace_dir
from mfpi_deploy.infer.stream import stream_tiles
from mfpi_deploy.output import ome_tiff, zarr_stack
from mfpi_deploy.output.layout import OutputFormat, StackLayout
from mfpi_deploy.run.lock import output_lock
from mfpi_deploy.run.options import RunOptions, RunSummary
from mfpi_deploy.run.state import RunState, mismatches, partial_dir
from mfpi_deploy.slide import SlideInputError, TileSource, open_slide, pixel_rule
from mfpi_deploy.tiling import Tile, TilePlan, batches, choose_plan


class RunInterrupted(MfpiError):
    """Ctrl-C or SIGTERM during a run; the partial run can be resumed."""

    exit_code = 130


class RunFailed(MfpiError):
    """A run that stopped part-way for a reason outside the input (disk full, engine error)."""


def run_slide(input_path: str | Path, output_path: str | Path, backend: Backend,
              options: RunOptions | None = None) -> RunSummary:
    """Run `backend` over the slide at `input_path`, writing the stack to `output_path`.

    The format follows the output name (.ome.zarr or .ome.tif). The output appears only when
    complete; until then everything lives in `<output>.partial/`, which `resume` continues.
    """
    options = options or RunOptions()
    started = time.perf_counter()
    input_path, output = Path(input_path), Path(output_path)
    fmt = OutputFormat.from_path(output)
    if backend.spec.needs_dpm:
        raise MfpiError("mfpi-run runs image-to-stack engines (MFPINet); Deep-Z needs one pass per plane")
    check_output_target(output, options)
    with output_lock(output):  # one run per output, held until the output is in place
        check_output_target(output, options)  # again: another run may have finished meanwhile
        return _run_locked(input_path, output, fmt, backend, options, started)


def _run_locked(input_path: Path, output: Path, fmt: OutputFormat, backend: Backend, options: RunOptions,
                started: float) -> RunSummary:
    spec = backend.spec
    state = RunState(partial_dir(output))
    with open_slide(input_path, options.level, series=options.series,
                    allow_empty_tiles=options.allow_empty_tiles) as slide:
        info = slide.info
        where = str(input_path)
        for warning in slide.warnings:
            options.log(f"warning: {input_path.name}: {warning}")
        if info.series_count > 1:
            options.log(f"{input_path.name}: the file holds {info.series_count} images (series); running series "
                        f"{info.series} ({info.width}x{info.height}); pick another with --series N")
        rule = pixel_rule(info.dtype, info.samples, spec.channels,
                          convert_channels=options.convert_channels,
                          max_value=options.input_max or info.max_value, where=where)
        source = TileSource(slide, rule, options.region)
        plan, batch = choose_plan(source.height, source.width, options.halo, spec.profiles,
                                  spec.stride, options.tile)
        if options.batch is not None:
            if options.batch < 1 or not any(p.accepts(plan.tile, plan.tile, options.batch) for p in spec.profiles):
                raise MfpiError(f"batch {options.batch} of {plan.tile} px tiles is outside the engine's profiles")
            batch = options.batch
        pixel_size = options.pixel_size_um or info.pixel_size_um
        if pixel_size is None:
            options.log("warning: the input's pixel size is unknown (no metadata); the output has no "
                        "physical x/y size (pass --pixel-size UM to set it)")
        layout = StackLayout(
            planes=spec.planes, channels=spec.channels, height=spec.scale * source.height,
            width=spec.scale * source.width, chunk=spec.scale * plan.core,
            pixel_size_um=pixel_size / spec.scale if pixel_size else None,
            planes_um=tuple(float(z) for z in spec.planes_um), name=input_path.stem,
        )
        settings = run_settings(input_path, info, options, plan, batch, layout, backend, rule.describe())
        groups = batches(plan.n_tiles, batch)
        resuming = options.resume and state.exists()
        left = 1.0 - (len(state.done_batches()) / len(groups) if resuming and groups else 0.0)
        check_free_space(output, layout, fmt, left, options.log)
        done, resumed = prepare_state(state, settings, layout, options)
        todo = [b for b in range(len(groups)) if b not in done]
        done_tiles = sum(len(groups[b]) for b in done if b < len(groups))
        series = f" series {info.series}" if info.series_count > 1 else ""
        options.log(f"{input_path.name}: {info.width}x{info.height} {info.format}{series} level {info.level}, "
                    f"{rule.describe()}; region {source.width}x{source.height} -> "
                    f"{plan.n_tiles} tiles of {plan.tile} px (halo {plan.halo}, "
                    f"{100 * plan.halo_overhead:.1f}% of computed pixels in halos), batch {batch}, {backend.describe()}")
        loop_start = time.perf_counter()
        try:
            _stream(source, plan, groups, todo, backend, state, layout, options, done_tiles)
        except KeyboardInterrupt:
            zarr_stack.settle_io()
            raise RunInterrupted(f"interrupted; {state.root} keeps the finished tiles: "
                                 f"rerun the same command with --resume to continue") from None
        except SlideInputError:
            zarr_stack.settle_io()
            if not resumed:
                state.remove()
            raise
        except OSError as exc:
            zarr_stack.settle_io()
            if exc.errno == errno.ENOSPC:
                raise RunFailed(f"no space left on device while writing {state.root}; free space and rerun "
                                f"with --resume (or delete that folder)") from None
            raise RunFailed(f"write failed ({exc}); finished tiles are kept in {state.root}, "
                            f"rerun with --resume") from None
        loop_seconds = time.perf_counter() - loop_start
    try:
        zarr_stack.build_pyramid(state.stack, layout)
        finish_output(state, output, fmt, options, ome_uuid(settings))
    except KeyboardInterrupt:
        zarr_stack.settle_io()
        raise RunInterrupted(f"interrupted while finishing {output}; all tiles are kept in {state.root}: "
                             f"rerun the same command with --resume to finish") from None
    except OSError as exc:
        zarr_stack.settle_io()
        reason = "no space left on device" if exc.errno == errno.ENOSPC else str(exc)
        raise RunFailed(f"{reason} while finishing {output}; all tiles are kept in {state.root}, "
                        f"rerun with --resume") from None
    summary = RunSummary(
        output=output, backend=backend.describe(), tiles=plan.n_tiles, tiles_computed=plan.n_tiles - done_tiles,
        tile=plan.tile, batch=batch, halo=plan.halo, seconds=time.perf_counter() - started,
        inference_seconds=loop_seconds, input_megapixels=source.height * source.width / 1e6,
        halo_overhead=plan.halo_overhead, resumed=resumed,
    )
    return summary


def check_output_target(output: Path, options: RunOptions) -> None:
    """Refuse an existing output (unless overwrite) and a folder we cannot write into."""
    if output.exists() and not options.overwrite:
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
    """Uncompressed bytes a run still writes: the Zarr stack (level 0 and its pyramid, the
    unfinished share of it) and, for an OME-TIFF, the file made from it at the end (both
    exist until the final rename)."""
    level0 = layout.planes * layout.channels * layout.height * layout.width
    stack = level0 * 4 // 3  # 2x pyramid: 1 + 1/4 + 1/16 + ...
    return int(stack * share_left) + (stack if fmt is OutputFormat.OME_TIFF else 0)


def check_free_space(output: Path, layout: StackLayout, fmt: OutputFormat, share_left: float,
                     log: Any) -> None:
    """Before the first tile: refuse an output that cannot fit in the free space even if it
    compressed MAX_COMPRESSION_RATIO:1; warn when it fits only if it compresses well."""
    folder = output.parent if str(output.parent) else Path(".")
    need = stack_bytes(layout, fmt, share_left)
    free = shutil.disk_usage(folder).free
    if need <= free:
        return
    ratio = need / max(free, 1)
    what = (f"the output needs about {_human(need)} uncompressed and {folder} has {_human(free)} free")
    if ratio > MAX_COMPRESSION_RATIO:
        raise MfpiError(f"not enough disk space: {what}, so it would have to compress better than "
                        f"{MAX_COMPRESSION_RATIO}:1; free space or write elsewhere (-o)")
    log(f"warning: {what}; it fits only if it compresses better than {ratio:.1f}:1")


def ome_uuid(settings: dict) -> str:
    """The OME-TIFF's UUID, derived from the run's settings (input, engine, tiling, layout), so a
    resumed run writes the same bytes as an uninterrupted one."""
    text = json.dumps(settings, sort_keys=True)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mfpi-deploy:run:" + hashlib.sha256(text.encode()).hexdigest()))


def run_settings(input_path: Path, info: Any, options: RunOptions, plan: TilePlan, batch: int,
                 layout: StackLayout, backend: Backend, rule: str) -> dict:
    """Everything that decides the output; a resume must match all of it."""
    stat = input_path.stat()
    spec = backend.spec
    return {
        "input": str(input_path.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
        "series": info.series, "level": info.level, "region": None if options.region is None else list(vars(options.region).values()),
        "pixels": rule, "tile": plan.tile, "halo": plan.halo, "batch": batch,
        "engine": {"kind": backend.kind.value, "architecture": spec.architecture, "channels": spec.channels,
                   "planes": spec.planes, "precision": spec.precision, "id": options.engine_id},
        "layout": layout.to_dict(),
    }


def prepare_state(state: RunState, settings: dict, layout: StackLayout, options: RunOptions) -> tuple[set[int], bool]:
    """Start a fresh partial run or pick up a matching one; returns (finished batches, resumed)."""
    if state.root.exists():
        if options.resume and state.exists():
            saved = state.settings()
            differ = mismatches(saved, settings)
            if differ:
                raise MfpiError(f"cannot resume {state.root}: it was started with different "
                                f"{', '.join(differ)}; pass --overwrite to start over")
            done = state.done_batches()
            options.log(f"resuming {state.root}: {len(done)} batch(es) already done")
            return done, True
        if not options.overwrite and state.exists():
            raise MfpiError(f"a partial run exists at {state.root}; pass --resume to continue it "
                            f"or --overwrite to start over")
        state.remove()
    elif options.resume:
        options.log(f"nothing to resume at {state.root}; starting a new run")
    state.create(settings)
    zarr_stack.create_stack(state.stack, layout)
    return set(), False


def finish_output(state: RunState, output: Path, fmt: OutputFormat, options: RunOptions,
                  uuid_text: str | None = None) -> None:
    """Turn the finished partial run into the output under its final name (rename last)."""
    if fmt is OutputFormat.OME_TIFF:
        tmp = state.root / "output.ome.tif"
        ome_tiff.write_ome_tiff(state.stack, tmp, compression=options.compression, uuid=uuid_text)
        replace_dir(tmp, output)
    else:
        replace_dir(state.stack, output)  # the old output stays until the new one is in place
    state.remove()


class _Progress:
    """Journals finished batches (after syncing their chunks) and moves the progress bar; thread-safe."""

    def __init__(self, state: RunState, plan: TilePlan, options: RunOptions, done_tiles: int) -> None:
        self.journal = state.open_journal()
        self.sync_seconds = options.sync_seconds
        self.lock = threading.Lock()
        self.pending: list[int] = []
        self.last_sync = time.monotonic()
        self.started = time.perf_counter()
        self.tiles = 0
        self.mp_per_tile = plan.core * plan.core / 1e6
        self.bar = tqdm(total=plan.n_tiles, initial=done_tiles, unit="tile", disable=not options.progress,
                        dynamic_ncols=True, smoothing=0.1, desc="tiles")

    def batch_done(self, index: int, tiles: int) -> None:
        with self.lock:
            self.pending.append(index)
            if time.monotonic() - self.last_sync >= self.sync_seconds:
                self._flush()
            self.tiles += tiles
            self.bar.update(tiles)
            rate = self.tiles * self.mp_per_tile / (time.perf_counter() - self.started)
            self.bar.set_postfix_str(f"{rate:.3f} MP/s", refresh=False)

    def _flush(self) -> None:
        # Chunks reach the disk before the journal names their batch (power-loss safe); one
        # sync per interval instead of an fsync per chunk file.
        if self.pending:
            os.sync()
            self.journal.record(self.pending)
            self.pending = []
        self.last_sync = time.monotonic()

    def close(self) -> None:
        """Journal what was written (also after Ctrl-C or an error: it is kept for --resume)."""
        with self.lock:
            try:
                self._flush()
            finally:
                self.journal.close()
                self.bar.close()


def _stream(source: TileSource, plan: TilePlan, groups: list[range], todo: list[int], backend: Backend,
            state: RunState, layout: StackLayout, options: RunOptions, done_tiles: int) -> None:
    scale = backend.spec.scale
    arr = zarr_stack.open_level(state.stack, 0, mode="r+")
    progress = _Progress(state, plan, options, done_tiles)

    def write(t: Tile, planes: np.ndarray) -> None:
        zarr_stack.write_core(arr, t.core.scaled(scale), planes)

    try:
        stream_tiles(source, plan, groups, todo, backend, write, on_batch=progress.batch_done,
                     queue_batches=options.queue_batches, writers=options.writers)
    finally:
        progress.close()
