"""Finish: the pyramid's last tiles, the final file (an OME-TIFF assembled from its encoded tiles, or
the staged OME-Zarr), the rename, the output's record, and the preview."""

from __future__ import annotations

import errno
import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path

from mfpi_deploy.fileio import replace_dir
from mfpi_deploy.output import ome_tiff, zarr_stack
from mfpi_deploy.output.codecs import CodecReport
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.run.errors import RunFailed, RunInterrupted
from mfpi_deploy.run.options import PreviewOptions, RunOptions
from mfpi_deploy.run.plan import PlannedRun, open_source
from mfpi_deploy.run.preview import write_preview
from mfpi_deploy.run.state import remove_record, write_record


def output_bytes(path: Path) -> int:
    """Bytes of a finished output file or folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def finish_run(run: PlannedRun, options: RunOptions, *, clean: bool = False) -> CodecReport:
    """All tiles written: the pyramid's last tiles, the final file, rename, record. `clean` first
    removes temporary chunk files a killed writer may have left (resumed and distributed runs).
    Returns what the codec check found (all checked tiles, earlier runs' included)."""
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
            path = write_preview(run.output, source, run.layout.planes_um, preview, z_in_steps=run.layout.z_in_steps)
    except OSError as exc:
        raise RunFailed(
            f"{run.output} is complete, but its preview could not be written ({exc.strerror or exc})"
        ) from None
    log(f"preview: {path}")


def finish_output(run: PlannedRun, options: RunOptions) -> CodecReport:
    """Turn the finished partial run into the output under its final name (rename last), then
    record what it was made with (the old record goes first: a crash leaves none, never a wrong one)."""
    state, output = run.state, run.output
    if run.format is OutputFormat.OME_TIFF:
        tmp = state.root / "output.ome.tif"
        index = ome_tiff.assemble_ome_tiff(
            state.tiles, run.grid, run.layout, run.codec, tmp, uuid=output_uuid(run.settings)
        )
        report = CodecReport.of(run.codec, run.floor_db, index.values(), run.layout.planes)
        remove_record(output)
        replace_dir(tmp, output)
    else:
        report = CodecReport.of(run.codec, run.floor_db, zarr_stack.read_scores(state.scores), run.layout.planes)
        remove_record(output)
        replace_dir(state.stack, output)  # the old output stays until the new one is in place
    write_record(output, run.settings)
    state.remove()
    if report.below_floor:
        options.log(f"warning: {output}: {report.line()}; pass --lossless for bit-exact planes")
    return report


def output_uuid(made_with: dict) -> str:
    """The OME UUID of an output, derived from what made it (input, settings, engine), so a rerun
    or a distributed run of the same settings writes the same bytes."""
    blob = json.dumps(made_with, sort_keys=True)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mfpi-deploy:" + hashlib.sha256(blob.encode()).hexdigest()))
