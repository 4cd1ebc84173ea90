"""Run state on disk: `<output>.partial/` holds the staged output (an OME-Zarr, or an OME-TIFF's
encoded tiles), the pyramid's pending pieces, the run's settings and a journal.

The journal lists finished batches, one index per line, appended only after the batch's
chunks are flushed to disk, so a resumed run skips exactly the batches that are safely
written. Batches are fixed groups of tiles, so a resumed result is identical. A distributed
run gives every task its own journal file (appends to one shared file are not atomic on
network file systems); the finished batches are the union of all of them. An `owner` token
names the client that drives the run, so tasks of a client that was killed stop writing.

A finished output gets a small hidden record next to it (`.<output>.mfpi.json`): the settings
it was made with, so a cohort rerun skips it only if this run would make the same output.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import write_atomic

PARTIAL_SUFFIX = ".partial"
STACK_NAME = "stack.ome.zarr"  # an OME-Zarr output, staged
TILES_NAME = "tiles"  # an OME-TIFF output's encoded tiles, staged
PYRAMID_NAME = "pyramid"  # lossless pieces of pyramid levels not yet made
SCORES_NAME = "scores"  # a lossy OME-Zarr's checked chunks: how each was encoded
SETTINGS_NAME = "run.json"
JOURNAL_NAME = "done-batches.txt"
JOURNAL_GLOB = "done-batches*.txt"
OWNER_NAME = "owner"


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
    def tiles(self) -> Path:
        return self.root / TILES_NAME

    @property
    def pyramid(self) -> Path:
        return self.root / PYRAMID_NAME

    @property
    def scores(self) -> Path:
        return self.root / SCORES_NAME

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
        """Batches the journals list; a torn last line (power loss) is ignored."""
        done: set[int] = set()
        for path in self.root.glob(JOURNAL_GLOB):
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                if line.strip().isdigit():
                    done.add(int(line))
        return done

    def open_journal(self, task: str | None = None) -> Journal:
        """The run's journal, or with `task` a journal file of that task alone (distributed runs)."""
        path = self.journal_path if task is None else self.root / f"done-batches.{task}.txt"
        return Journal(path)

    @property
    def owner_path(self) -> Path:
        return self.root / OWNER_NAME

    def claim(self) -> str:
        """Make this client the run's owner: a new token; tasks holding an older one stop."""
        token = uuid.uuid4().hex
        write_atomic(self.owner_path, token + "\n")
        return token

    def stop_writers(self) -> None:
        """Take the run from whoever writes it (a token nobody holds): their tasks stop at the next batch."""
        if self.root.is_dir():
            self.claim()

    def owner(self) -> str | None:
        try:
            return self.owner_path.read_text().strip()
        except FileNotFoundError:
            return None

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

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Settings by the words a user knows them by (the options or what they describe), where the key differs.
SETTING_WORDS = {
    "input_bytes": "input file (its size)",
    "input_mtime_ns": "input file (its modification time)",
    "pixels": "pixel conversion",
    "floor_db": "fidelity floor (the model's PSNR + 10 dB)",
    "output_format": "output format",
    "tile_side": "output tile size",
    "jpeg_encoder": "JPEG encoder (--jpeg-on-gpu)",
}


def mismatches(saved: dict, wanted: dict) -> list[str]:
    """Settings that differ between a partial run (or a finished output's record) and this one,
    named as a user knows them."""
    return sorted(SETTING_WORDS.get(k, k) for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))


RECORD_SUFFIX = ".mfpi.json"


def record_path(output: Path) -> Path:
    """The hidden record of a finished output: `.<name>.mfpi.json` next to it."""
    return output.with_name(f".{output.name}{RECORD_SUFFIX}")


def _fingerprint(output: Path) -> dict:
    stat = output.stat()
    return {"bytes": stat.st_size if output.is_file() else None, "mtime_ns": stat.st_mtime_ns}


def write_record(output: Path, made_with: dict) -> None:
    """Record what `output` (just put in place) was made with, and which file it is."""
    write_atomic(
        record_path(output),
        json.dumps({"made_with": made_with, "output": _fingerprint(output)}, indent=2, sort_keys=True) + "\n",
    )


def remove_record(output: Path) -> None:
    """Before an output is replaced: a crash then leaves no record rather than a wrong one."""
    record_path(output).unlink(missing_ok=True)


def record_differences(output: Path, made_with: dict) -> list[str] | None:
    """How the finished `output` differs from what this run would make: [] if it is the same,
    names of the differing settings, or None if it has no valid record (or was replaced since)."""
    try:
        record = json.loads(record_path(output).read_text())
        if record["output"] != _fingerprint(output):
            return None
        return mismatches(record["made_with"], made_with)
    except (OSError, ValueError, KeyError, TypeError):
        return None
