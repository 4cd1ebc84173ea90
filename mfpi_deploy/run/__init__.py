"""The streaming slide pipeline behind `mfpi-run`: `run_slide(input, output, backend, RunOptions)`."""
from mfpi_deploy.run.options import RunOptions, RunSummary
from mfpi_deploy.run.pipeline import RunFailed, RunInterrupted, run_slide

__all__ = ["RunFailed", "RunInterrupted", "RunOptions", "RunSummary", "run_slide"]
