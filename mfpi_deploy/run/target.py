"""The output target, checked before anything is read: it may be written, and the stack fits the disk."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import OutputFormat, StackLayout
from mfpi_deploy.output.zarr_stack import is_stack
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.preview import preview_path
from mfpi_deploy.run.state import partial_dir


def check_output_target(output: Path, options: RunOptions, source: Path | None = None) -> None:
    """Refuse an output that is (or holds) the input `source`, an existing output (unless overwrite,
    or skip_finished: decided once planned), a folder there that no run wrote (never deleted,
    even with overwrite), and a folder we cannot write into (the output's, or --preview's)."""
    if source is not None and _holds(output, source):
        raise MfpiError(f"the output {output} is the input slide {source}; write the stack elsewhere (-o)")
    if output.exists() or output.is_symlink():
        if not (options.overwrite or options.skip_finished):
            if options.resume and partial_dir(output).exists():
                raise MfpiError(
                    f"{output} exists, and {partial_dir(output)} is a run that replaces it: "
                    "pass --resume --overwrite to continue that run"
                )
            if options.resume:
                raise MfpiError(f"{output} is finished: nothing to resume (pass --overwrite to compute it again)")
            raise MfpiError(f"{output} exists; pass --overwrite to replace it")
        if output.is_dir() and not output.is_symlink() and not is_stack(output):
            raise MfpiError(
                f"{output} is a folder that mfpi-run did not write; it is not replaced: move it or choose another -o"
            )
    check_folder(output, "output")
    if options.preview is not None and options.preview.path is not None:  # else it goes beside the output
        check_folder(preview_path(output, options.preview), "preview")


def check_folder(path: Path, what: str) -> None:
    """Refuse to write `path` (the `what`: output, preview) into a folder that is missing or
    read-only: a mistyped folder is an error, not a tree we create."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MfpiError(f"{what} folder {parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".mfpi-probe-"):
            pass
    except OSError as exc:
        raise MfpiError(f"cannot write into {what} folder {parent} ({exc.strerror or exc})") from None


def _holds(output: Path, source: Path) -> bool:
    """True if writing `output` would replace `source`: the same file (by any name) or a folder
    that contains it."""
    if not (output.exists() or output.is_symlink()):
        return False
    with contextlib.suppress(OSError):
        if output.samefile(source):
            return True
    out, src = output.resolve(), source.resolve()
    return src == out or out in src.parents


# Free-space check: a stack that cannot fit even at this compression ratio is refused.
MAX_COMPRESSION_RATIO = 100


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def stack_bytes(layout: StackLayout, fmt: OutputFormat, share_left: float = 1.0) -> int:
    """Uncompressed bytes a run still writes: the staged stack (level 0 and its pyramid, the
    unfinished share of it) and, for an OME-TIFF, the file assembled from it at the end (both
    exist until the final rename)."""
    level0 = layout.planes * layout.channels * layout.height * layout.width
    stack = level0 * 4 // 3  # 2x pyramid: 1 + 1/4 + 1/16 + ...
    return int(stack * share_left) + (stack if fmt is OutputFormat.OME_TIFF else 0)


def check_free_space(output: Path, layout: StackLayout, fmt: OutputFormat, share_left: float, log: Any) -> None:
    """Before the first tile: refuse an output that cannot fit in the free space even if it
    compressed MAX_COMPRESSION_RATIO:1; warn when it fits only if it compresses well."""
    folder = output.parent if str(output.parent) else Path(".")
    need = stack_bytes(layout, fmt, share_left)
    free = shutil.disk_usage(folder).free
    if need <= free:
        return
    ratio = need / max(free, 1)
    what = f"the output needs about {_human(need)} uncompressed and {folder} has {_human(free)} free"
    if ratio > MAX_COMPRESSION_RATIO:
        raise MfpiError(
            f"not enough disk space: {what}, so it would have to compress better than "
            f"{MAX_COMPRESSION_RATIO}:1; free space or write elsewhere (-o)"
        )
    log(f"warning: {what}; it fits only if it compresses better than {ratio:.1f}:1")
