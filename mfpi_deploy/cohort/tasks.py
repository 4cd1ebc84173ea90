"""What a worker runs: a whole slide of a cohort (`run_job`), or a region of one big slide
(`run_region`: whole batches of its plan, written as whole chunks, journaled per task).

Both take plain, picklable arguments and open the engine through the per-process cache, so
they run the same in the client's process and on a Dask worker.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from mfpi_deploy.cohort.engine import ENGINE_LOCK, EngineRef, worker_backend
from mfpi_deploy.cohort.jobs import SlideJob
from mfpi_deploy.cohort.report import SlideRow, SlideStatus
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.run.compute import stream_batches
from mfpi_deploy.run.errors import RunInterrupted
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.pipeline import run_slide
from mfpi_deploy.run.plan import PlannedRun, open_source
from mfpi_deploy.run.stage import owner_check


def run_job(job: SlideJob, ref: EngineRef, options: RunOptions, worker: str) -> SlideRow:
    """Run one slide of a cohort (finished outputs with the same settings are skipped); a failure
    becomes a failed row with its one-line reason, so the cohort goes on."""
    opts = dataclasses.replace(job.overrides.apply(options), skip_finished=True)
    started = time.perf_counter()
    described = ""

    def failed(reason: str) -> SlideRow:
        return SlideRow(
            str(job.input),
            str(job.output),
            SlideStatus.FAILED,
            seconds=time.perf_counter() - started,
            backend=described,
            worker=worker,
            error=reason,
        )

    try:
        with ENGINE_LOCK:
            backend = worker_backend(ref, log=opts.log)
            described = backend.describe()
            summary = run_slide(job.input, job.output, backend, opts)
    except RunInterrupted:
        raise
    except MfpiError as exc:
        return failed(str(exc))
    except Exception as exc:  # an engine or library error: this slide fails, the cohort goes on
        return failed(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    return SlideRow(
        str(job.input),
        str(job.output),
        SlideStatus.SKIPPED if summary.skipped else SlideStatus.DONE,
        tiles=summary.tiles_computed,
        seconds=summary.seconds,
        megapixels_per_s=summary.megapixels_per_second,
        backend=summary.backend,
        worker=worker,
    )


@dataclass(frozen=True)
class RegionResult:
    """What one region task computed (batches already journaled by an earlier attempt are not redone)."""

    tiles: int
    seconds: float
    worker: str


def run_region(
    run: PlannedRun, batches: Sequence[int], ref: EngineRef, options: RunOptions, token: str, name: str, worker: str
) -> RegionResult:
    """Run batches of a planned slide into its partial stack. Each batch writes whole tiles and
    chunks of its own (a tile's core is exactly its chunks), so tasks need no lock; the pyramid
    levels shared by several tasks are left to the client's finish. Each task attempt journals
    into its own file. Stops (RunSuperseded) once `token` no longer owns the run."""
    started = time.perf_counter()
    state = run.state
    check = owner_check(state, token)
    check()
    done = state.done_batches()
    todo = [b for b in batches if b not in done]
    groups = run.groups
    if todo:
        with ENGINE_LOCK:
            backend = worker_backend(ref, log=options.log)
            with open_source(run) as source, state.open_journal(task=f"{name}-{uuid.uuid4().hex[:8]}") as journal:
                stream_batches(source, run, todo, backend, journal, options, check=check, build_upper=False)
    return RegionResult(sum(len(groups[b]) for b in todo), time.perf_counter() - started, worker)


def split_regions(run: PlannedRun, parts: int) -> list[list[int]]:
    """About `parts` contiguous runs of whole batches (the batches of a single-process run, so the
    engine sees the same inputs: byte-identical output). When batches tile the rows, a region is
    a band of whole tile rows, or a segment of one row if rows are more than a region's share."""
    n = len(run.groups)
    size = -(-n // max(1, parts))
    if run.plan.cols % run.batch:
        return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    per_row = run.plan.cols // run.batch
    if size >= per_row:
        size = -(-size // per_row) * per_row
        return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    segment = -(-per_row // -(-per_row // size))  # equal segments of a row, none longer than size
    return [
        list(range(row + i, min(row + i + segment, row + per_row, n)))
        for row in range(0, n, per_row)
        for i in range(0, per_row, segment)
        if row + i < n
    ]
