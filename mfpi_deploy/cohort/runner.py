"""Run a cohort of slides, or one big slide split into regions, on Dask workers (or a cohort one
slide after another in this process), with a report and progress bars.

The client plans and finishes; workers read, infer and write. A slide's output is the same,
byte for byte, whichever way it ran: the same plan, the same fixed batches, the same finish.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mfpi_deploy.cohort.cluster import ClusterOptions, open_client
from mfpi_deploy.cohort.engine import EngineRef, close_backends, process_name
from mfpi_deploy.cohort.jobs import SlideJob
from mfpi_deploy.cohort.report import CohortReport, SlideRow, SlideStatus
from mfpi_deploy.cohort.tasks import run_job, split_regions
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.run.errors import RunFailed, RunInterrupted
from mfpi_deploy.run.lock import output_lock
from mfpi_deploy.run.options import RunOptions, RunSummary
from mfpi_deploy.run.pipeline import SlideRun
from mfpi_deploy.run.stage import tile_errors
from mfpi_deploy.run.state import RunState, partial_dir
from mfpi_deploy.run.target import check_output_target

REGIONS_PER_WORKER = 8  # regions of a big slide per worker: balances the load; a killed worker loses little
STOP_WAIT_SECONDS = 60.0  # after an error or Ctrl-C: how long running tasks get to notice and stop


class CohortFailed(MfpiError):
    """Some slides of a cohort failed (each is in the report with its reason); the others are done."""

    exit_code = 1


class _Bars:
    """Slides done and tiles computed, as two progress bars (thread-safe: Dask events arrive on
    the client's event-loop thread). Each slide adds its tiles to the total once it has planned."""

    def __init__(self, slides: int | None, enabled: bool, tiles: int = 0, initial_tiles: int = 0) -> None:
        self.lock = threading.Lock()
        self.slides = tqdm(
            total=slides,
            desc="slides",
            unit="slide",
            position=0,
            dynamic_ncols=True,
            disable=not enabled or slides is None,
        )
        self.tiles = tqdm(
            total=tiles,
            initial=initial_tiles,
            desc="tiles",
            unit="tile",
            dynamic_ncols=True,
            position=1 if slides is not None else 0,
            disable=not enabled,
            smoothing=0.1,
        )
        self.started: dict[object, list[int]] = {}  # slide -> [tiles done, tiles it computes]

    def on_tiles(self, key: object, done: int, total: int) -> None:
        with self.lock:
            entry = self.started.get(key)
            if entry is None:
                entry = self.started[key] = [0, total]
                self.tiles.total += total
                self.tiles.refresh()
            entry[0] += done
            self.tiles.update(done)

    def add_tiles(self, done: int) -> None:
        with self.lock:
            self.tiles.update(done)

    def slide_done(self, key: object, summary: str) -> None:
        with self.lock:
            done, total = self.started.pop(key, [0, 0])
            if done < total:  # a failed slide's tiles will not come
                self.tiles.total -= total - done
                self.tiles.refresh()
            self.slides.update(1)
            self.slides.set_postfix_str(summary)

    def logger(self, log: Callable[[str], None]) -> Callable[[str], None]:
        def write(message: str) -> None:
            with self.lock, tqdm.external_write_mode():
                log(message)

        return write

    def close(self) -> None:
        self.tiles.close()
        self.slides.close()


@contextlib.contextmanager
def _client(cluster: ClusterOptions, log: Callable[[str], None], client: Any | None) -> Iterator[Any]:
    """The caller's client (with the engine plugin), or a new one for `cluster`."""
    if client is None:
        with open_client(cluster, log) as opened:
            yield opened
        return
    from mfpi_deploy.cohort.dask_worker import EnginePlugin

    client.register_plugin(EnginePlugin())
    yield client


def run_cohort(
    jobs: Sequence[SlideJob],
    ref: EngineRef,
    options: RunOptions,
    cluster: ClusterOptions,
    report: CohortReport,
    client: Any | None = None,
) -> CohortReport:
    """Run every slide of the cohort; a failure is recorded with its reason and the cohort goes on.

    Finished outputs whose record matches this run's settings are skipped. Ctrl-C raises
    RunInterrupted, every slide resumable with --resume. With `client` (a distributed.Client)
    the slides run on its cluster.
    """
    bars = _Bars(len(jobs), options.progress)
    log = bars.logger(options.log)
    try:
        if cluster.distributed or client is not None:
            _cohort_on_dask(jobs, ref, options, cluster, report, bars, log, client)
        else:
            _cohort_in_process(jobs, ref, options, report, bars, log)
    finally:
        bars.close()
    return report


def _interrupted(report: CohortReport) -> RunInterrupted:
    return RunInterrupted(
        f"interrupted; finished slides are kept ({report.csv_path}): rerun the same command with --resume to continue"
    )


def _finished(report: CohortReport, bars: _Bars, log: Callable[[str], None], index: int, row: SlideRow) -> None:
    report.update(index, row)
    bars.slide_done(index, report.summary(finished=True))
    if row.status is SlideStatus.FAILED:
        log(f"failed: {row.error if row.slide in row.error else f'{row.slide}: {row.error}'}")


def _cohort_in_process(
    jobs: Sequence[SlideJob],
    ref: EngineRef,
    options: RunOptions,
    report: CohortReport,
    bars: _Bars,
    log: Callable[[str], None],
) -> None:
    worker = process_name()
    try:
        for i, job in enumerate(jobs):
            report.mark(i, SlideStatus.RUNNING, worker=worker)
            opts = dataclasses.replace(options, progress=False, log=log, on_tiles=functools.partial(bars.on_tiles, i))
            try:
                row = run_job(job, ref, opts, worker)
            except (RunInterrupted, KeyboardInterrupt):
                report.mark(i, SlideStatus.INTERRUPTED, error="interrupted: --resume continues it")
                raise _interrupted(report) from None
            _finished(report, bars, log, i, row)
    finally:
        close_backends()


def _killed_reason(cluster: ClusterOptions) -> str:
    times = f"{cluster.retries + 1} times" if cluster.own_cluster else "on every allowed try"
    return (
        f"crashed its worker {times} (killed, out of memory, or a crash in a reader or the engine: "
        f"a bad file?); not retried further"
    )


def _row(future: Any, job: SlideJob, cluster: ClusterOptions) -> SlideRow:
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return SlideRow(str(job.input), str(job.output), SlideStatus.FAILED, error=_killed_reason(cluster))
    except MfpiError as exc:
        return SlideRow(str(job.input), str(job.output), SlideStatus.FAILED, error=str(exc))
    except Exception as exc:
        return SlideRow(
            str(job.input),
            str(job.output),
            SlideStatus.FAILED,
            error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
        )


def _shipped(options: RunOptions) -> RunOptions:
    """Options as sent to workers (callbacks stay here; workers attach their own)."""
    return dataclasses.replace(options, log=print, on_tiles=None, progress=False)


def _cohort_on_dask(
    jobs: Sequence[SlideJob],
    ref: EngineRef,
    options: RunOptions,
    cluster: ClusterOptions,
    report: CohortReport,
    bars: _Bars,
    log: Callable[[str], None],
    given: Any | None,
) -> None:
    from distributed import as_completed

    from mfpi_deploy.cohort.dask_worker import job_task

    with _client(cluster, log, given) as client:
        topic = f"mfpi-{uuid.uuid4().hex[:12]}"
        client.subscribe_topic(f"{topic}-log", lambda event: log(event[1][1]))
        client.subscribe_topic(f"{topic}-tiles", lambda event: bars.on_tiles(*event[1]))
        client.subscribe_topic(f"{topic}-start", lambda event: report.start(*event[1]))
        shipped = _shipped(options)
        futures = {
            client.submit(job_task, i, job, ref, shipped, topic, key=f"{topic}-slide-{i}", pure=False): i
            for i, job in enumerate(jobs)
        }
        pending = set(futures.values())
        try:
            for future in as_completed(futures):
                i = futures[future]
                pending.discard(i)
                _finished(report, bars, log, i, _row(future, jobs[i], cluster))
        except KeyboardInterrupt:
            for i in pending:  # tasks still running stop at their next batch; their slides stay resumable
                RunState(partial_dir(jobs[i].output)).stop_writers()
                if report.rows[i].status is SlideStatus.RUNNING:
                    report.mark(i, SlideStatus.INTERRUPTED, error="interrupted: --resume continues it")
            _wait_stopped(client, list(futures), cluster)
            raise _interrupted(report) from None


def _wait_stopped(client: Any, futures: list, cluster: ClusterOptions) -> None:
    """Give running tasks (told to stop) time to end, so nothing writes once the client is gone.
    Workers of a local cluster end with it; a second Ctrl-C stops waiting."""
    from distributed import wait

    with contextlib.suppress(Exception, KeyboardInterrupt):
        if not cluster.own_cluster:  # workers of a cluster this command started end with it
            wait(futures, timeout=STOP_WAIT_SECONDS)
        client.cancel(futures)


def run_slide_distributed(
    input_path: str | Path,
    output_path: str | Path,
    ref: EngineRef,
    options: RunOptions,
    cluster: ClusterOptions,
    client: Any | None = None,
) -> RunSummary:
    """One slide on Dask workers: the client plans and creates the partial stack, tasks run regions of
    whole batches (aligned to output chunks), the client checks the journals and finishes.

    Byte-identical to `run_slide` with the same engine and options; resumable with --resume.
    With `client` (a distributed.Client) it runs on that client's cluster.
    """
    output = Path(output_path)
    check_output_target(output, options, Path(input_path))
    with output_lock(output), _client(cluster, options.log, client) as client:
        from mfpi_deploy.cohort.dask_worker import facts_task  # after the client: Dask is there

        facts = client.submit(facts_task, ref, pure=False).result()
        return _slide_on_dask(client, Path(input_path), output, facts, ref, options, cluster)


def _slide_on_dask(
    client: Any,
    input_path: Path,
    output: Path,
    facts: Any,
    ref: EngineRef,
    options: RunOptions,
    cluster: ClusterOptions,
) -> RunSummary:
    from distributed import KilledWorker, as_completed

    from mfpi_deploy.cohort.dask_worker import region_task

    began = SlideRun.begin(input_path, output, facts, options, time.perf_counter())
    if isinstance(began, RunSummary):
        return began
    run, state, token, resumed, done = began.run, began.run.state, began.token, began.resumed, began.done
    groups = run.groups
    workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    regions = [
        r
        for r in ([b for b in region if b not in done] for region in split_regions(run, workers * REGIONS_PER_WORKER))
        if r
    ]
    done_tiles = began.done_tiles
    options.log(f"{run.description}; {len(regions)} region(s) on {workers} Dask worker(s)")
    bars = _Bars(None, options.progress, tiles=run.plan.n_tiles, initial_tiles=done_tiles)
    topic = f"mfpi-{uuid.uuid4().hex[:12]}"
    client.subscribe_topic(f"{topic}-log", lambda event: options.log(event[1][1]))
    client.subscribe_topic(f"{topic}-tiles", lambda event: bars.add_tiles(event[1][1]))
    shipped = _shipped(options)
    loop_start = time.perf_counter()
    futures = [
        client.submit(
            region_task, run, region, ref, shipped, token, f"r{j:04d}", topic, key=f"{topic}-r{j:04d}", pure=False
        )
        for j, region in enumerate(regions)
    ]
    try:
        with tile_errors(state, resumed):
            try:
                for future in as_completed(futures):
                    future.result()  # the first failure stops the others
            except KilledWorker:
                state.stop_writers()
                _wait_stopped(client, futures, cluster)
                raise RunFailed(
                    f"{input_path}: a region {_killed_reason(cluster)}; finished tiles are kept in "
                    f"{state.root}, rerun with --resume"
                ) from None
            except BaseException:
                state.stop_writers()
                _wait_stopped(client, futures, cluster)
                raise
    finally:
        bars.close()
    loop_seconds = time.perf_counter() - loop_start
    written = state.done_batches()
    missing = [b for b in range(len(groups)) if b not in written]
    if missing:
        raise RunFailed(
            f"{input_path}: {len(missing)} batch(es) have no journal entry after all tasks ended; rerun with --resume"
        )
    return began.finish(f"{facts.describe()} on {workers} Dask worker(s)", loop_seconds, clean=True)
