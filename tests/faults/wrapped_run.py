"""`python -m tests.faults.wrapped_run [--slow S] [--slow-finish S] [--enospc-finish] -- ARGS`:
mfpi-run with test hooks.

--slow S: every engine call sleeps S seconds; --slow-finish S: assembling the OME-TIFF waits S
seconds first; so a test can kill the run at a chosen point. --enospc-finish: the disk fills up
while the OME-TIFF is assembled (its first plane is written, the next write fails with ENOSPC).
"""

from __future__ import annotations

import errno
import sys
import time


def main() -> None:
    argv = sys.argv[1:]
    sep = argv.index("--")
    hooks, args = argv[:sep], argv[sep + 1 :]
    flags = {"--enospc-finish"}
    opts: dict[str, str] = {}
    while hooks:
        name = hooks.pop(0)
        opts[name] = "" if name in flags else hooks.pop(0)
    if "--slow" in opts:
        from mfpi_deploy.backends.torch_backend import TorchBackend

        run, slow = TorchBackend.run, float(opts["--slow"])

        def slow_run(self, tiles, dpm=None):  # type: ignore[no-untyped-def]
            time.sleep(slow)
            return run(self, tiles, dpm)

        TorchBackend.run = slow_run
    if "--slow-finish" in opts:
        from mfpi_deploy.output import ome_tiff

        write, wait = ome_tiff.assemble_ome_tiff, float(opts["--slow-finish"])

        def slow_write(*a, **k):  # type: ignore[no-untyped-def]
            time.sleep(wait)
            return write(*a, **k)

        ome_tiff.assemble_ome_tiff = slow_write
    if "--enospc-finish" in opts:
        import tifffile

        page_write, calls = tifffile.TiffWriter.write, []

        def full_write(self, *a, **k):  # type: ignore[no-untyped-def]
            calls.append(1)
            if len(calls) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return page_write(self, *a, **k)

        tifffile.TiffWriter.write = full_write
    from mfpi_deploy.cli.run import main as run_main

    run_main(args, prog_name="mfpi-run")


if __name__ == "__main__":
    main()
