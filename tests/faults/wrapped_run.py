"""`python -m tests.faults.wrapped_run [--slow S] [--slow-finish S] [--enospc-level N] -- ARGS`:
mfpi-run with test hooks.

--slow S: every engine call sleeps S seconds; --slow-finish S: writing the OME-TIFF waits S
seconds first; so a test can kill the run at a chosen point. --enospc-level N: every chunk write of pyramid
level N fails with ENOSPC inside zarr's own I/O (as on a full disk, where the pyramid is
the last thing written before the OME-TIFF).
"""

from __future__ import annotations

import errno
import sys
import time
from pathlib import Path


def main() -> None:
    argv = sys.argv[1:]
    sep = argv.index("--")
    hooks, args = argv[:sep], argv[sep + 1 :]
    opts = dict(zip(hooks[::2], hooks[1::2]))
    if "--slow" in opts:
        from mfpi_deploy.backends.torch_backend import TorchBackend

        run, slow = TorchBackend.run, float(opts["--slow"])

        def slow_run(self, tiles, dpm=None):  # type: ignore[no-untyped-def]
            time.sleep(slow)
            return run(self, tiles, dpm)

        TorchBackend.run = slow_run
    if "--slow-finish" in opts:
        from mfpi_deploy.output import ome_tiff

        write, wait = ome_tiff.write_ome_tiff, float(opts["--slow-finish"])

        def slow_write(*a, **k):  # type: ignore[no-untyped-def]
            time.sleep(wait)
            return write(*a, **k)

        ome_tiff.write_ome_tiff = slow_write
    if "--enospc-level" in opts:
        import zarr.storage._local as local

        marker = f"stack.ome.zarr/{opts['--enospc-level']}/"
        put = local._put

        def full_put(path, value, exclusive=False):  # type: ignore[no-untyped-def]
            if marker in str(path) and not Path(path).name.startswith("."):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return put(path, value, exclusive=exclusive)

        local._put = full_put
    from mfpi_deploy.cli.run import main as run_main

    run_main(args, prog_name="mfpi-run")


if __name__ == "__main__":
    main()
