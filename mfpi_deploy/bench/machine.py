"""A description of the machine a benchmark ran on, recorded next to its numbers."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil
import torch

from mfpi_deploy.gitinfo import git_commit

# SIMD features that decide convolution speed, as /proc/cpuinfo names them (x86, then Arm)
SIMD_FEATURES = tuple("sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 asimd sve".split())
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


def cpu_details(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str], str, bool | None]:
    """(marketing name, SIMD features, "vendor family F model M", under a hypervisor) of the first processor in
    /proc/cpuinfo; without the file (not Linux), the name is what `platform` knows."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    name = next((fields[k] for k in ("model name", "Hardware", "Processor") if fields.get(k)), "")
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    labels = (("vendor_id", ""), ("cpu family", "family "), ("model", "model "))
    ident = " ".join(f"{label}{fields[key]}" for key, label in labels if fields.get(key))
    return (
        name or platform.processor() or platform.machine() or "unknown CPU",
        [f for f in SIMD_FEATURES if f in flags],
        ident,
        ("hypervisor" in flags) if flags else None,
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
    name, features, ident, virtual = cpu_details()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return MachineInfo(
        cpu=name,
        logical_cores=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False),
        memory_gib=psutil.virtual_memory().total / 2**30,
        os=platform.platform(),
        python=sys.version.split()[0],
        packages=package_versions(),
        gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        load_average=tuple(round(x, 2) for x in load) if load else None,  # type: ignore[arg-type]
        source_commit=git_commit(short=True),
        cpu_features=features,
        cpu_id=ident,
        virtualized=virtual,
    )
