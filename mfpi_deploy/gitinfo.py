"""The git commit of the code that runs, when it runs from a checkout (recorded with results)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(*, short: bool = False) -> str | None:
    """HEAD of the checkout holding this package, or None (installed from a wheel, no git)."""
    args = ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None
