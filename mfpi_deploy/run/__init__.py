"""The streaming slide pipeline behind `mfpi-run`: `run_slide(input, output, backend, RunOptions)`."""

from mfpi_deploy.run.options import RunOptions, RunSummary
from mfpi_deploy.run.pipeline import PlannedRun, RunFailed, RunInterrupted, RunSuperseded, plan_run, run_slide

__all__ = [
    "PlannedRun",
    "RunFailed",
    "RunInterrupted",
    "RunOptions",
    "RunSummary",
    "RunSuperseded",
    "plan_run",
    "run_slide",
]
