"""Where the work runs: in this process, on a LocalCluster of worker processes, on dask-cuda's
LocalCUDACluster, or on a running Dask scheduler (dask-jobqueue, dask-kubernetes, ...).

Dask is imported only inside `open_client`, so the core install runs without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfpi_deploy.errors import MfpiError

LOCAL = "local"
LOCAL_CUDA = "local-cuda"
DASK_MISSING = "{what} needs Dask: pip install 'mfpi-deploy[dask]' (or '.[dask]' in a checkout)"


def cpu_cores() -> int:
    """Cores this process may run on (CPU affinity, e.g. a SLURM allocation), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ClusterOptions:
    """How to scale out. Defaults: no Dask (today's in-process run) unless more than one worker is asked for."""

    # None or "local": a LocalCluster; "local-cuda": dask-cuda's; else a running scheduler (address or file)
    scheduler: str | None = None
    workers: int = 1  # worker processes of a local cluster (one engine each)
    threads: int | None = None  # engine threads per worker; None: cores // workers on a local cluster
    retries: int = 2  # times a slide (or region) may crash a worker before it is recorded as failed
    dashboard: str | None = ":8787"  # dashboard address of a local cluster (None: no dashboard)
    wait_seconds: float = 300.0  # how long to wait for the first worker of a running scheduler

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise MfpiError(f"--workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise MfpiError(f"--threads must be >= 1, got {self.threads}")
        if self.retries < 0:
            raise MfpiError(f"--retries must be >= 0, got {self.retries}")
        if self.scheduler is not None and not self.scheduler.strip():
            raise MfpiError("--scheduler must be 'local', 'local-cuda' or a scheduler address")

    @property
    def distributed(self) -> bool:
        """Run on Dask (a scheduler was named, or more than one worker asked for)."""
        return self.scheduler is not None or self.workers > 1

    @property
    def local(self) -> bool:
        return self.scheduler in (None, LOCAL)

    @property
    def own_cluster(self) -> bool:
        """This command starts (and stops) the cluster: a LocalCluster or dask-cuda's."""
        return self.scheduler in (None, LOCAL, LOCAL_CUDA)

    def engine_threads(self, cores: int | None = None) -> tuple[int | None, str | None]:
        """Engine threads per worker and a warning if workers x threads oversubscribe the cores.

        On a local cluster the default shares the cores out (workers x threads <= cores); on a
        running scheduler None lets each worker use its own Dask thread count.
        """
        if not self.local:
            return self.threads, None
        cores = cores or cpu_cores()
        threads = self.threads or max(1, cores // self.workers)
        warning = None
        if self.workers * threads > cores:
            warning = (
                f"warning: {self.workers} workers x {threads} threads > {cores} cores; they will compete for the CPU"
            )
        return threads, warning


def visible_gpus() -> tuple[str, ...]:
    """GPUs this machine shows (CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`), to give each local worker one."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return tuple(d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1")
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU "))


@contextlib.contextmanager
def open_client(options: ClusterOptions, log: Callable[[str], None] = print) -> Iterator[Any]:
    """A connected `distributed.Client` (and the local cluster behind it, closed on exit).

    Each worker gets the EnginePlugin (one GPU each on a local cluster, engines freed on
    shutdown); the dashboard address is logged.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise MfpiError(DASK_MISSING.format(what="--workers > 1 or --scheduler")) from None
    from mfpi_deploy.cohort.dask_worker import EnginePlugin

    cluster = None
    devices: tuple[str, ...] = ()
    # a task that crashed its worker (killed, out of memory, a decoder segfault) this many times fails
    with dask.config.set({"distributed.scheduler.allowed-failures": options.retries}):
        if options.local:
            devices = visible_gpus()
            cluster = LocalCluster(
                n_workers=options.workers, threads_per_worker=1, processes=True, dashboard_address=options.dashboard
            )
        elif options.scheduler == LOCAL_CUDA:
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError:
                raise MfpiError("--scheduler local-cuda needs dask-cuda: pip install 'mfpi-deploy[dask-gpu]'") from None
            cluster = LocalCUDACluster(threads_per_worker=1, dashboard_address=options.dashboard)
        try:
            client = _connect(Client, cluster, options)
        except BaseException:
            if cluster is not None:
                cluster.close()
            raise
    try:
        if cluster is None:
            log(
                "retries: as the scheduler's distributed.scheduler.allowed-failures says (--retries is for "
                "clusters this command starts)"
            )
            try:
                client.wait_for_workers(1, timeout=options.wait_seconds)
            except Exception:
                raise MfpiError(
                    f"no worker joined the scheduler at {options.scheduler} within {options.wait_seconds:.0f} s"
                ) from None
        client.register_plugin(EnginePlugin(devices))
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        log(f"dask: {workers} worker(s) at {client.scheduler.address}; dashboard: {dashboard_link(client, cluster)}")
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            # idle workers that are slow to exit (torch's teardown) are killed: no warning for that
            nanny = logging.getLogger("distributed.nanny")
            level = nanny.level
            nanny.setLevel(logging.ERROR)
            try:
                with contextlib.suppress(Exception):
                    cluster.close()
            finally:
                nanny.setLevel(level)


def _connect(client_class: Any, cluster: Any, options: ClusterOptions) -> Any:
    if cluster is not None:
        return client_class(cluster)
    target = options.scheduler or ""
    try:
        if target.endswith(".json") and Path(target).is_file():
            return client_class(scheduler_file=target, timeout=30)
        return client_class(target, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise MfpiError(f"cannot reach the Dask scheduler at {target} ({' '.join(str(exc).split())[:200]})") from None


def dashboard_link(client: Any, cluster: Any = None) -> str:
    """The dashboard's address, or why there is none (a local cluster serves it only with bokeh)."""
    link = None
    if cluster is None or importlib.util.find_spec("bokeh") is not None:
        with contextlib.suppress(Exception):
            link = client.dashboard_link
    return link or "not running (pip install bokeh for Dask's dashboard)"
