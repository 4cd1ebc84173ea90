"""The cohort report: one row per slide (status, tiles, time, speed, backend, worker, error),
rewritten atomically as CSV and JSON whenever a slide changes state, so it is never torn."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mfpi_deploy.choices import Choice
from mfpi_deploy.cohort.jobs import SlideJob
from mfpi_deploy.fileio import write_atomic


class SlideStatus(Choice):
    """Where a slide of a cohort stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"  # finished before, with the same settings
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C: --resume continues it


@dataclass(frozen=True)
class SlideRow:
    """One slide's line of the report. `tiles` and `megapixels_per_s` count what this run computed."""

    slide: str
    output: str
    status: SlideStatus = SlideStatus.PENDING
    tiles: int = 0
    seconds: float = 0.0
    megapixels_per_s: float = 0.0
    backend: str = ""
    worker: str = ""
    error: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", SlideStatus.parse(self.status))
        if "\n" in self.error:
            object.__setattr__(self, "error", " ".join(self.error.split()))

    def as_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "status": self.status.value,
            "seconds": round(self.seconds, 3),
            "megapixels_per_s": round(self.megapixels_per_s, 4),
        }


FIELDS = tuple(f.name for f in dataclasses.fields(SlideRow))


class CohortReport:
    """Rows of a cohort, written to `<stem>.csv` and `<stem>.json` after every update (thread-safe)."""

    def __init__(self, stem: Path, jobs: Sequence[SlideJob], about: dict | None = None) -> None:
        self.stem = Path(stem)
        self.about = dict(about or {})
        self.started = time.time()
        self.rows = [SlideRow(str(job.input), str(job.output)) for job in jobs]
        self._lock = threading.Lock()
        self.write()

    @property
    def csv_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".csv")

    @property
    def json_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".json")

    def update(self, index: int, row: SlideRow) -> None:
        with self._lock:
            self.rows[index] = row
            self._write()

    def mark(self, index: int, status: SlideStatus, **fields: object) -> None:
        with self._lock:
            self.rows[index] = dataclasses.replace(self.rows[index], status=status, **fields)
            self._write()

    def start(self, index: int, worker: str) -> None:
        """A worker took the slide (events may arrive late: only a pending row changes)."""
        with self._lock:
            if self.rows[index].status is SlideStatus.PENDING:
                self.rows[index] = dataclasses.replace(self.rows[index], status=SlideStatus.RUNNING, worker=worker)
                self._write()

    def count(self, status: SlideStatus) -> int:
        return sum(row.status is status for row in self.rows)

    def counts(self) -> dict[str, int]:
        return {s.value: self.count(s) for s in SlideStatus if self.count(s)}

    @property
    def all_succeeded(self) -> bool:
        return all(row.status in (SlideStatus.DONE, SlideStatus.SKIPPED) for row in self.rows)

    def summary(self, finished: bool = False) -> str:
        """'3 done, 1 skipped, 1 failed' (with `finished`, only slides that ended)."""
        ended = (SlideStatus.DONE, SlideStatus.SKIPPED, SlideStatus.FAILED)
        return ", ".join(
            f"{n} {status}" for status, n in self.counts().items() if not finished or SlideStatus(status) in ended
        )

    def write(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow(row.as_dict())
        write_atomic(self.csv_path, buffer.getvalue())
        body = {
            "cohort": {
                **self.about,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "slides": len(self.rows),
                "counts": self.counts(),
            },
            "slides": [row.as_dict() for row in self.rows],
        }
        write_atomic(self.json_path, json.dumps(body, indent=2) + "\n")
