"""mfpi-bench: Table III measured on the user's hardware (MFPINet vs Deep-Z per-plane inference)."""
from __future__ import annotations

from mfpi_deploy.bench.stats import Summary, paired_ratios, percentile, summarize
from mfpi_deploy.bench.suite import BenchSettings, quick_settings, run_benchmark
from mfpi_deploy.bench.workload import BenchModel, Workload, make_workloads

__all__ = ["Summary", "summarize", "percentile", "paired_ratios", "BenchSettings", "quick_settings",
           "run_benchmark", "BenchModel", "Workload", "make_workloads"]
