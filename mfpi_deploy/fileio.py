"""Files and folders that appear complete or not at all: write under a temporary name, then rename."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename.

    The temporary file is opened normally, so the result has the usual (umask) file mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


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


def write_durable(path: str | Path, data: bytes) -> Path:
    """Like `write_atomic`, and on the disk when it returns (file and folder entry fsynced): what a
    journal may name after a power loss. Creates missing folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: str | Path) -> None:
    """Make a folder's entries (files just renamed into it) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
