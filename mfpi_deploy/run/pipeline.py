"""The one sequence of a slide run, in named roles: plan (`run.plan`) -> stage (`run.stage`) ->
compute (`run.compute`: read, engine, encode/write, pyramid) -> finish (`run.finish`).

`SlideRun` is that sequence; `run_slide` runs it in this process, and a distributed run
(`mfpi_deploy.cohort`) runs the same begin and finish around batches computed by Dask tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mfpi_deploy.backends.base import Backend, EngineFacts
from mfpi_deploy.output.codecs import CodecReport
from mfpi_deploy.run.compute import stream_batches
from mfpi_deploy.run.finish import finish_run, output_bytes
from mfpi_deploy.run.lock import output_lock
from mfpi_deploy.run.options import RunOptions, RunSummary
from mfpi_deploy.run.plan import PlannedRun, open_source, plan_run
from mfpi_deploy.run.stage import check_finished, owner_check, start_state, tile_errors
from mfpi_deploy.run.target import check_output_target


@dataclass
class SlideRun:
    """A planned, staged run of one slide: what is left to compute, and how to finish it.

    `begin` plans and stages it (None when a finished output with the same settings is kept);
    the caller computes `todo` (here or on Dask workers), then `finish` writes the output.
    """

    run: PlannedRun
    options: RunOptions
    done: set[int]  # batches finished by earlier runs (resume)
    resumed: bool
    token: str  # this client's claim on the partial run
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def begin(
        cls, input_path: Path, output: Path, engine: EngineFacts, options: RunOptions, started: float
    ) -> SlideRun | RunSummary:
        """Plan the run and stage its partial folder; a RunSummary (skipped) if the output is kept."""
        run = plan_run(input_path, output, engine, options)
        if check_finished(run, options):
            return skipped_summary(run, engine.describe(), time.perf_counter() - started)
        done, resumed = start_state(run, options)
        return cls(run, options, done, resumed, run.state.claim(), started)

    @property
    def todo(self) -> list[int]:
        return [b for b in range(len(self.run.groups)) if b not in self.done]

    @property
    def done_tiles(self) -> int:
        groups = self.run.groups
        return sum(len(groups[b]) for b in self.done if b < len(groups))

    @property
    def check(self) -> Callable[[], None]:
        """Raises RunSuperseded once another client owns the partial run."""
        return owner_check(self.run.state, self.token)

    def finish(self, backend: str, loop_seconds: float, *, clean: bool) -> RunSummary:
        """Every batch computed: finish the output and summarise the run."""
        report = finish_run(self.run, self.options, clean=clean)
        seconds = time.perf_counter() - self.started
        return run_summary(self.run, backend, self.done_tiles, seconds, loop_seconds, self.resumed, report)


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
    check_output_target(output, options, Path(input_path))
    with output_lock(output):  # one run per output, held until the output is in place
        began = SlideRun.begin(Path(input_path), output, backend.facts(), options, time.perf_counter())
        if isinstance(began, RunSummary):
            return began
        run, state = began.run, began.run.state
        options.log(run.description)
        loop_start = time.perf_counter()
        with tile_errors(state, began.resumed), open_source(run) as source, state.open_journal() as journal:
            stream_batches(source, run, began.todo, backend, journal, options, began.done_tiles, began.check)
        return began.finish(backend.describe(), time.perf_counter() - loop_start, clean=began.resumed)


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
