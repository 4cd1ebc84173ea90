"""A description of the machine a benchmark ran on, recorded next to its numbers."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata

import psutil
import torch

from mfpi_deploy.gitinfo import git_commit
from mfpi_deploy.machine import cpu_details, load_average

PACKAGES = ("mfpi-deploy", "torch", "numpy", "onnxruntime", "onnxruntime-gpu", "tensorrt", "pycuda")


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
    cpu_features: list[str] = field(default_factory=list)  # SIMD features that decide conv speed
    cpu_id: str = ""  # vendor family/model, e.g. "AuthenticAMD family 25 model 17"
    virtualized: bool | None = None

    def one_line(self) -> str:
        gpu = f", GPU: {'; '.join(self.gpus)}" if self.gpus else ", no GPU"
        ident = f" ({self.cpu_id}{', virtual machine' if self.virtualized else ''})" if self.cpu_id else ""
        simd = f", {'/'.join(self.cpu_features)}" if self.cpu_features else ""
        return (
            f"{self.cpu}{ident}{simd}, {self.logical_cores} logical cores, {self.memory_gib:.0f} GiB{gpu}; "
            f"{self.os}; Python {self.python}"
        )


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide the speed (absent ones are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe_machine() -> MachineInfo:
    cpu = cpu_details()
    return MachineInfo(
        cpu=cpu.name,
        logical_cores=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False),
        memory_gib=psutil.virtual_memory().total / 2**30,
        os=platform.platform(),
        python=sys.version.split()[0],
        packages=package_versions(),
        gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        load_average=load_average(),
        source_commit=git_commit(short=True),
        cpu_features=list(cpu.features),
        cpu_id=cpu.ident,
        virtualized=cpu.virtualized,
    )
