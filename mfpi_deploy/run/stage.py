"""Stage: the partial-run folder an output grows in: a finished output kept or refused, a fresh or
resumed partial run, the owner token, and tile-loop errors as one-line, resumable messages."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.run.errors import RunFailed, RunInterrupted, RunSuperseded
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.plan import PlannedRun
from mfpi_deploy.run.state import RunState, mismatches, record_differences
from mfpi_deploy.run.target import check_free_space
from mfpi_deploy.slide import SlideInputError


def owner_check(state: RunState, token: str) -> Callable[[], None]:
    """A check for the tile loop: raises RunSuperseded once `token` no longer owns the partial run,
    so writers of a killed or interrupted client stop at their next batch."""

    def check() -> None:
        if state.owner() != token:
            raise RunSuperseded(f"{state.root} is now run by another process; this one stopped")

    return check


def start_state(run: PlannedRun, options: RunOptions) -> tuple[set[int], bool]:
    """Check the free space for what is left to write, then create or resume the partial run
    (prepare_state); returns the finished batches and whether it resumed."""
    state, groups = run.state, run.groups
    resuming = options.resume and state.exists()
    left = 1.0 - (len(state.done_batches()) / len(groups) if resuming and groups else 0.0)
    check_free_space(run.output, run.layout, run.format, left, options.log)
    return prepare_state(run, options)


def check_finished(run: PlannedRun, options: RunOptions) -> bool:
    """True if the output exists and `skip_finished` keeps it (its record matches this run's
    settings); MfpiError if it exists and may not be replaced; False: compute it."""
    if not (run.output.exists() or run.output.is_symlink()):
        return False
    differ = record_differences(run.output, run.settings)
    if options.skip_finished and differ == []:
        return True
    if options.overwrite:
        return False
    why = "" if differ is None or not options.skip_finished else f" (made with different {', '.join(differ)})"
    raise MfpiError(f"{run.output} exists{why}; pass --overwrite to replace it")


@contextlib.contextmanager
def tile_errors(state: RunState, resumed: bool) -> Iterator[None]:
    """Errors of the tile loop as one-line MfpiErrors that say how to go on; bad input removes a new run."""
    try:
        yield
    except KeyboardInterrupt:
        zarr_stack.settle_io()
        if not _has_finished_batch(state):  # the same command replaces it (prepare_state)
            raise RunInterrupted("interrupted before any tile was finished; rerun the same command to start") from None
        raise RunInterrupted(
            f"interrupted; {state.root} keeps the finished tiles: rerun the same command with --resume to continue"
        ) from None
    except SlideInputError:
        zarr_stack.settle_io()
        if not resumed:
            state.remove()
        raise
    except OSError as exc:
        zarr_stack.settle_io()
        if exc.errno == errno.ENOSPC:
            raise RunFailed(
                f"no space left on device while writing {state.root}; free space and rerun "
                f"with --resume (or delete that folder)"
            ) from None
        raise RunFailed(f"write failed ({exc}); finished tiles are kept in {state.root}, rerun with --resume") from None


def _has_finished_batch(state: RunState) -> bool:
    try:
        return bool(state.done_batches())
    except (MfpiError, OSError):  # unreadable: say what keeps the most
        return True


def prepare_state(run: PlannedRun, options: RunOptions) -> tuple[set[int], bool]:
    """Start a fresh partial run or pick up a matching one; returns (finished batches, resumed)."""
    state, settings = run.state, run.settings
    if state.root.exists():
        if options.resume and state.exists():
            saved = state.settings()
            differ = mismatches(saved, settings)
            if differ:
                # tiles or batches the run chose itself (another engine or version plans others): name the ones it
                # began with, as the options that bring them back
                given = {"tile": options.tile, "batch": options.batch}
                chosen = [k for k, v in given.items() if v is None and k in saved and saved[k] != settings.get(k)]
                keep = " ".join(f"--{k} {saved[k]}" for k in chosen)
                keep = f", or {keep} to resume it" if keep else ""
                raise MfpiError(
                    f"cannot resume {state.root}: it was started with different "
                    f"{', '.join(differ)}; pass --overwrite to start over{keep}"
                )
            done = state.done_batches()
            options.log(f"resuming {state.root}: {len(done)} batch(es) already done")
            return done, True
        if not options.overwrite and state.exists():
            if state.done_batches():
                raise MfpiError(
                    f"a partial run exists at {state.root}; pass --resume to continue it or --overwrite to start over"
                )
            # a run stopped before its first batch was done (an error, Ctrl-C): nothing in it to keep
            options.log(f"replacing {state.root}: a partial run with no finished batch")
        state.remove()
    elif options.resume:
        options.log(f"nothing to resume at {state.root}; starting a new run")
    state.create(settings)
    if run.format is OutputFormat.OME_ZARR:
        zarr_stack.create_stack(state.stack, run.layout, run.grid, run.codec)
    else:
        state.tiles.mkdir()
    return set(), False
