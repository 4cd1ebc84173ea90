"""The Dask worker side: a plugin that gives each local worker one GPU and frees its engine on
shutdown, and the task entry points, which send log lines and tile counts to the client as Dask
events (topic-log, topic-tiles, topic-start). Imported only when Dask runs (it imports distributed).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from mfpi_deploy.backends.base import EngineFacts
from mfpi_deploy.cohort.engine import EngineRef, close_backends, engine_facts
from mfpi_deploy.cohort.jobs import SlideJob
from mfpi_deploy.cohort.report import SlideRow
from mfpi_deploy.cohort.tasks import RegionResult, run_job, run_region
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.plan import PlannedRun


class EnginePlugin(WorkerPlugin):
    """Pins worker k of a local cluster to GPU k mod n (before any CUDA call of that process) and
    closes the worker's engines when it shuts down. dask-cuda and cluster managers pin GPUs
    themselves: there `devices` is empty."""

    name = "mfpi-engine"
    idempotent = True  # every client registers it; a worker keeps its engines across clients

    def __init__(self, devices: Sequence[str] = ()) -> None:
        self.devices = tuple(devices)

    def setup(self, worker: object) -> None:
        name = getattr(worker, "name", None)
        if len(self.devices) > 1 and isinstance(name, int):
            os.environ["CUDA_VISIBLE_DEVICES"] = self.devices[name % len(self.devices)]

    def teardown(self, worker: object) -> None:
        close_backends()


class _Link:
    """A task's line to the client: log lines and tile counts as events (thread-safe: writer threads call it)."""

    def __init__(self, topic: str, key: int | str) -> None:
        self.worker = get_worker()  # a context variable of the task's thread, so looked up here
        self.topic, self.key = topic, key

    def log(self, message: str) -> None:
        self.worker.log_event(f"{self.topic}-log", [self.key, str(message)])

    def tiles(self, done: int, total: int) -> None:
        self.worker.log_event(f"{self.topic}-tiles", [self.key, int(done), int(total)])

    def started(self) -> None:
        self.worker.log_event(f"{self.topic}-start", [self.key, self.label])

    @property
    def label(self) -> str:
        return str(self.worker.address)

    def options(self, options: RunOptions) -> RunOptions:
        return dataclasses.replace(options, log=self.log, on_tiles=self.tiles, progress=False)

    def engine(self, ref: EngineRef) -> EngineRef:
        """On a cluster this command did not size, the engine uses the worker's own thread count."""
        if ref.threads is None:
            return dataclasses.replace(ref, threads=self.worker.state.nthreads)
        return ref


def facts_task(ref: EngineRef) -> EngineFacts:
    return engine_facts(_Link("", "").engine(ref))


def job_task(index: int, job: SlideJob, ref: EngineRef, options: RunOptions, topic: str) -> SlideRow:
    link = _Link(topic, index)
    link.started()
    return run_job(job, link.engine(ref), link.options(options), worker=link.label)


def region_task(
    run: PlannedRun, batches: Sequence[int], ref: EngineRef, options: RunOptions, token: str, name: str, topic: str
) -> RegionResult:
    link = _Link(topic, name)
    return run_region(run, batches, link.engine(ref), link.options(options), token, name, worker=link.label)
