"""Run state on disk: `<output>.partial/` holds the growing Zarr, the run's settings and a journal.

The journal lists finished batches, one index per line, appended only after the batch's
chunks are flushed to disk, so a resumed run skips exactly the batches that are safely
written. Batches are fixed groups of tiles, so a resumed result is identical.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import write_atomic

PARTIAL_SUFFIX = ".partial"
STACK_NAME = "stack.ome.zarr"
SETTINGS_NAME = "run.json"
JOURNAL_NAME = "done-batches.txt"


def partial_dir(output: Path) -> Path:
    return output.with_name(output.name + PARTIAL_SUFFIX)


@dataclass(frozen=True)
class RunState:
    """The partial-run folder of one output."""

    root: Path

    @property
    def stack(self) -> Path:
        return self.root / STACK_NAME

    @property
    def settings_path(self) -> Path:
        return self.root / SETTINGS_NAME

    @property
    def journal_path(self) -> Path:
        return self.root / JOURNAL_NAME

    def exists(self) -> bool:
        return self.settings_path.is_file()

    def create(self, settings: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=False)
        write_atomic(self.settings_path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
        self.journal_path.touch()

    def settings(self) -> dict:
        try:
            return json.loads(self.settings_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MfpiError(f"{self.root}: unreadable partial run ({exc}); pass --overwrite to start over") from None

    def done_batches(self) -> set[int]:
        """Batches the journal lists; a torn last line (power loss) is ignored."""
        done: set[int] = set()
        try:
            text = self.journal_path.read_text()
        except FileNotFoundError:
            return done
        for line in text.splitlines():
            if line.strip().isdigit():
                done.add(int(line))
        return done

    def open_journal(self) -> Journal:
        return Journal(self.journal_path)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Journal:
    """Append-only list of finished batches, fsynced on every record."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, batches: list[int]) -> None:
        os.write(self._fd, "".join(f"{b}\n" for b in batches).encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def mismatches(saved: dict, wanted: dict) -> list[str]:
    """Settings that differ between a partial run and this one (names only)."""
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
