"""Scale-out of mfpi-run on Dask (dask.distributed): cohorts of slides with a report, and one big
slide split into chunk-aligned regions across workers. Dask is imported only when a cluster is
used (`cluster.open_client`), so the core install runs without it."""

from mfpi_deploy.cohort.cluster import ClusterOptions
from mfpi_deploy.cohort.engine import EngineRef
from mfpi_deploy.cohort.jobs import SlideJob, SlideOverrides, collect_jobs, default_output, is_cohort
from mfpi_deploy.cohort.report import CohortReport, SlideRow, SlideStatus
from mfpi_deploy.cohort.runner import CohortFailed, run_cohort, run_slide_distributed

__all__ = [
    "ClusterOptions",
    "CohortFailed",
    "CohortReport",
    "EngineRef",
    "SlideJob",
    "SlideOverrides",
    "SlideRow",
    "SlideStatus",
    "collect_jobs",
    "default_output",
    "is_cohort",
    "run_cohort",
    "run_slide_distributed",
]
