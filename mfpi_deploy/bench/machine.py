"""A description of the machine a benchmark ran on, recorded next to its numbers."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import psutil


@dataclass(frozen=True)
class MachineInfo:
    """CPU, cores, memory, OS, GPU and package versions; load average when measured."""

    cpu: str
    logical_cores: int
    physical_cores: int | None
    memory_gib: float
    os: str
    python: str
    packages: dict[str, str]
    gpus: list[str] = field(default_factory=list)
    load_average: tuple[float, float, float] | None = None
    source_commit: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def one_line(self) -> str:
        gpu = f", GPU: {'; '.join(self.gpus)}" if self.gpus else ", no GPU"
        return (f"{self.cpu}, {self.logical_cores} logical cores, {self.memory_gib:.0f} GiB{gpu}; "
                f"{self.os}; Python {self.python}")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def package_versions(names: tuple[str, ...] = ("mfpi-deploy", "torch", "numpy", "onnxruntime",
                                                "onnxruntime-gpu", "tensorrt", "pycuda")) -> dict[str, str]:
    """Installed versions of the packages that decide the speed (absent ones are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def cuda_devices() -> list[str]:
    """Names of the CUDA devices torch sees (empty on a CPU-only machine or CPU build)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def source_commit() -> str | None:
    """The git commit of the mfpi_deploy sources when they run from a checkout (else None)."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def describe_machine() -> MachineInfo:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return MachineInfo(
        cpu=cpu_model(),
        logical_cores=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False),
        memory_gib=psutil.virtual_memory().total / 2**30,
        os=platform.platform(),
        python=sys.version.split()[0],
        packages=package_versions(),
        gpus=cuda_devices(),
        load_average=tuple(round(x, 2) for x in load) if load else None,  # type: ignore[arg-type]
        source_commit=source_commit(),
    )
