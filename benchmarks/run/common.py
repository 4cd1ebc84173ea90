"""Shared bits of the run benchmarks: a test image and a model to run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def sample_image(size: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """An RGB uint8 slide-like image: the simulated sample slide (mfpi-run --make-sample's)."""
    from mfpi_deploy.run.sample import make_sample

    return make_sample(size, seed).image, "simulated cytology sample (mfpi-run --make-sample)"


def recorded_conditions() -> dict:
    """The command, commit, CPU (model, SIMD flags, cores) and load at the end of a measurement."""
    import shlex

    from mfpi_deploy.gitinfo import git_commit
    from mfpi_deploy.machine import conditions

    command = "python " + shlex.join([str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]])
    return {"command": command, "commit": git_commit(short=True), **conditions()}


def write_report(out: str, result: dict, lines: list[str]) -> None:
    """Record a measurement as OUT.json (for machines, with `recorded_conditions`) and OUT.md (for
    people), and print it."""
    recorded = recorded_conditions()
    result = {**result, "recorded": recorded}
    load = ", ".join(map(str, recorded["load_average"])) or "unknown"
    lines = [
        *lines,
        "",
        f"Recorded by `{recorded['command']}` at commit {recorded['commit']}: {recorded['cpu']} "
        f"({'/'.join(recorded['cpu_features'])}), {recorded['logical_cores']} logical cores, load average {load} "
        "at the end.",
    ]
    Path(out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
