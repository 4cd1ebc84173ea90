"""Files and folders that appear complete or not at all: write under a temporary name, then rename."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

Buffer = bytes | bytearray | memoryview  # what a binary file's write takes


def write_atomic(path: str | Path, data: str | bytes | Sequence[Buffer], *, durable: bool = False) -> Path:
    """Write `data` (text, bytes, or byte buffers written one after another, so large parts need
    not be joined into one copy first) to `path` via a temporary file in the same folder and an
    atomic rename.

    The temporary file is opened normally, so the result has the usual (umask) file mode. With
    `durable`, the file and its folder entry are also on the disk when this returns (fsynced):
    what a journal may name after a power loss.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            if isinstance(data, (str, bytes, bytearray, memoryview)):
                f.write(data.encode() if isinstance(data, str) else data)
            else:
                for part in data:
                    f.write(part)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)
    return path


def write_durable(path: str | Path, data: bytes | Sequence[Buffer]) -> Path:
    """`write_atomic(..., durable=True)`: the staged tiles and pyramid pieces a run journals."""
    return write_atomic(path, data, durable=True)


def fsync_path(path: str | Path) -> None:
    """Flush a file, or a folder's entries (files just renamed into it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _owner() -> str:
    """This process as a staging folder names it: host and pid (host names may hold '-', pids not)."""
    return f"{socket.gethostname()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_staging(parent: str | Path, prefix: str, suffix: str = ".tmp") -> list[Path]:
    """Remove staging folders `staging_dir` made in `parent` for processes of this host that are
    gone (a kill -9 or power loss mid-export leaves one); another host's, or a live process's, are
    kept. Returns what was removed."""
    host = socket.gethostname()
    removed = []
    for path in Path(parent).glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        owner = path.name[len(prefix) : len(path.name) - len(suffix)]
        name, _, _random = owner.rpartition("-")  # mkdtemp's random part has no '-'
        made_by, _, pid = name.rpartition("-")
        if made_by == host and pid.isdigit() and not _alive(int(pid)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def staging_dir(parent: str | Path, prefix: str, suffix: str = ".tmp") -> Path:
    """A new, uniquely named folder in `parent` that will become a published folder (renamed into
    place): made with the permissions `mkdir` gives (mkdtemp's are owner-only, 0700), so other
    users and cluster workers can read what is published. Its name holds this host and pid, so a
    later call of `remove_stale_staging` can tell when its maker is gone."""
    path = Path(tempfile.mkdtemp(prefix=prefix + _owner(), suffix=suffix, dir=parent))
    mask = os.umask(0)
    os.umask(mask)
    path.chmod(0o777 & ~mask)
    return path


def old_path(target: str | Path) -> Path:
    """Where `replace_dir` keeps the previous `target` while it swaps in the new one."""
    target = Path(target)
    return target.with_name(target.name + ".old")


def replace_dir(new: str | Path, target: str | Path) -> Path:
    """Move the finished folder (or file) `new` to `target`, replacing whatever is there.

    The previous target is kept as `<target>.old` until the new one is in place, so a crash
    at any moment leaves one complete copy under one of the two names (`existing_dir`).
    `new` must be on the same file system as `target` (a sibling, or inside a sibling).
    """
    new, target = Path(new), Path(target)
    old = old_path(target)
    _remove(old)
    if target.exists() or target.is_symlink():
        os.replace(target, old)
    os.replace(new, target)
    _remove(old)
    return target


def existing_dir(target: str | Path) -> Path | None:
    """`target`, or the `.old` copy `replace_dir` left if a swap was interrupted, or None."""
    target = Path(target)
    if target.is_dir():
        return target
    old = old_path(target)
    return old if old.is_dir() else None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (weights files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
