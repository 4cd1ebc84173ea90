"""One run per output: an OS file lock next to `<output>.partial/`, held for the whole run.

The lock is `flock` on `<output>.partial.lock`. The kernel drops it when the process ends in
any way (kill -9 included), so a stale lock file never blocks `--resume`; a second run on the
same output while the first is alive is refused at once. The holder removes the lock file
when it is done; a process that locked a file another holder had just removed notices (the
path no longer names its file) and tries again, so two runs never both hold the lock.
Without fcntl (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.run.state import partial_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".lock"
_held: dict[str, list[int]] = {}  # lock path -> [fd, depth]: re-entrant within one process
_guard = threading.Lock()


class OutputBusy(MfpiError):
    """Another live run is writing the same output."""


def lock_path(output: str | Path) -> Path:
    partial = partial_dir(Path(output))
    return partial.with_name(partial.name + LOCK_SUFFIX)


@contextlib.contextmanager
def output_lock(output: str | Path) -> Iterator[Path]:
    """Hold the lock of `output` for the block; OutputBusy at once if another process holds it."""
    path = lock_path(output)
    key = str(path.parent.resolve() / path.name)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            fd = None
        else:
            fd = _acquire(path, Path(output)) if fcntl is not None else -1
            _held[key] = [fd, 1]
    try:
        yield path
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                if entry[0] >= 0:
                    _release(path, entry[0])


def _acquire(path: Path, output: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"another mfpi-run (pid {holder})" if holder else "another mfpi-run"
            raise OutputBusy(
                f"{who} is writing {output} (it holds {path}); wait for it to finish, or stop it "
                f"and rerun with --resume"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the previous holder removed the file between our open and lock: again


def _release(path: Path, fd: int) -> None:
    try:
        path.unlink(missing_ok=True)  # while still holding the lock (see the module docstring)
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
