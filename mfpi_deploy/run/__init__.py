"""The streaming slide pipeline behind `mfpi-run`: `run_slide(input, output, backend, RunOptions)`."""

from mfpi_deploy.run.errors import RunFailed, RunInterrupted, RunSuperseded
from mfpi_deploy.run.options import RunOptions, RunSummary
from mfpi_deploy.run.pipeline import SlideRun, run_slide
from mfpi_deploy.run.plan import PlannedRun, plan_run

__all__ = [
    "PlannedRun",
    "RunFailed",
    "RunInterrupted",
    "RunOptions",
    "RunSummary",
    "RunSuperseded",
    "SlideRun",
    "plan_run",
    "run_slide",
]
