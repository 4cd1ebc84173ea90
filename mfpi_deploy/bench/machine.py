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

from mfpi_deploy.gitinfo import git_commit


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

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def one_line(self) -> str:
        gpu = f", GPU: {'; '.join(self.gpus)}" if self.gpus else ", no GPU"
        ident = f" ({self.cpu_id}{', virtual machine' if self.virtualized else ''})" if self.cpu_id else ""
        simd = f", {'/'.join(self.cpu_features)}" if self.cpu_features else ""
        return (f"{self.cpu}{ident}{simd}, {self.logical_cores} logical cores, {self.memory_gib:.0f} GiB{gpu}; "
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


SIMD_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                 "asimd", "sve")


def cpu_details(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[list[str], str, bool | None]:
    """(SIMD features, "vendor family F model M", running under a hypervisor) from /proc/cpuinfo."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return [], "", None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # first processor only
            continue
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    ident = " ".join(x for x in (fields.get("vendor_id", ""),
                                 f"family {fields['cpu family']}" if "cpu family" in fields else "",
                                 f"model {fields['model']}" if "model" in fields else "") if x)
    return [f for f in SIMD_FEATURES if f in flags], ident, ("hypervisor" in flags) if flags else None


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


def describe_machine() -> MachineInfo:
    features, ident, virtual = cpu_details()
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
        source_commit=git_commit(short=True),
        cpu_features=features, cpu_id=ident, virtualized=virtual,
    )
