"""The machine's facts that decide a timing (CPU model and SIMD flags, cores, load), read in one place.

Every figure the project records carries these: the bench report, the auto-probe's cache key and the
benchmark scripts all call `cpu_details`, `load_average` and `conditions`. `python -m
mfpi_deploy.machine` prints them as one JSON line, for shell scripts.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuDetails", "cpu_details", "load_average", "conditions"]

CPUINFO = Path("/proc/cpuinfo")
# SIMD features that decide convolution speed, as /proc/cpuinfo names them (x86, then Arm)
SIMD_FEATURES = tuple(
    "sse4_2 avx avx2 fma avx512f avx512_vnni avx_vnni avx512_bf16 amx_tile amx_bf16 amx_int8 asimd sve".split()
)


@dataclass(frozen=True)
class CpuDetails:
    """The first processor: marketing name, the SIMD features that matter, "vendor family F model M",
    whether it runs under a hypervisor (None: unknown), and every flag (for a cache key)."""

    name: str
    features: tuple[str, ...]
    ident: str
    virtualized: bool | None
    flags: tuple[str, ...] = ()

    def one_line(self) -> str:
        simd = "/".join(self.features) or "no AVX"
        return f"{self.name} ({self.ident}), {simd}" if self.ident else f"{self.name}, {simd}"


def cpu_details(cpuinfo: Path = CPUINFO) -> CpuDetails:
    """The first processor of /proc/cpuinfo; without the file (not Linux), the name `platform` knows."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    name = next((fields[k] for k in ("model name", "Hardware", "Processor") if fields.get(k)), "")
    flags = tuple(sorted(set((fields.get("flags") or fields.get("Features") or "").split())))
    labels = (("vendor_id", ""), ("cpu family", "family "), ("model", "model "))
    ident = " ".join(f"{label}{fields[key]}" for key, label in labels if fields.get(key))
    return CpuDetails(
        name or platform.processor() or platform.machine() or "unknown CPU",
        tuple(f for f in SIMD_FEATURES if f in flags),
        ident,
        ("hypervisor" in flags) if flags else None,
        flags,
    )


def load_average() -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    if not hasattr(os, "getloadavg"):
        return None
    one, five, fifteen = (round(x, 2) for x in os.getloadavg())
    return one, five, fifteen


def conditions() -> dict[str, object]:
    """What a results file records beside a figure: CPU, SIMD features, cores and load, now."""
    cpu = cpu_details()
    return {
        "cpu": cpu.name,
        "cpu_id": cpu.ident,
        "cpu_features": list(cpu.features),
        "virtualized": cpu.virtualized,
        "logical_cores": os.cpu_count() or 1,
        "load_average": list(load_average() or ()),
    }


if __name__ == "__main__":
    print(json.dumps(conditions()))
