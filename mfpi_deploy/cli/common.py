"""What every command shares: one-line errors with a non-zero exit, never a traceback.

`user_errors` is the one top-level handler of every command (mfpi-run, mfpi-export,
mfpi-bench, mfpi-train, mfpi-eval, python -m mfpi_deploy.synth). A refusal (MfpiError, a
missing or unreadable file, a full disk) prints one `error:` line and exits with 2; Ctrl-C
exits with 130; anything unexpected prints one `error: unexpected ...` line and exits with 1.
Tracebacks appear only with MFPI_DEBUG=1 in the environment.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mfpi_deploy.errors import MfpiError

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "MFPI_DEBUG"


def debug_enabled() -> bool:
    """MFPI_DEBUG=1 (any value but empty or 0): show tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def fail(message: str, code: int = 2) -> None:
    """Print `error: message` on one line to stderr and exit with `code`."""
    _quiet_shutdown()
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


class _OneLineUsage:
    """click's own refusals (a bad option value, a missing argument) as one `error:` line with
    exit code 2, like every other refusal, instead of click's usage block."""

    def main(self, args: Any = None, prog_name: str | None = None, *a: Any, **kw: Any) -> Any:
        if kw.get("standalone_mode", True) is False:
            return super().main(args, prog_name, *a, **kw)  # type: ignore[misc]
        kw["standalone_mode"] = False
        try:
            rv = super().main(args, prog_name, *a, **kw)  # type: ignore[misc]
        except click.exceptions.UsageError as exc:
            name = prog_name or getattr(exc.ctx, "command_path", None) or "the command"
            fail(f"{exc.format_message()} (see {name} --help)", exc.exit_code)
        except click.exceptions.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.exceptions.Abort:
            fail("interrupted", 130)
        sys.exit(rv if isinstance(rv, int) else 0)  # --help and friends return their exit code here


class Command(_OneLineUsage, click.Command):
    """A command whose usage errors are one line (`@click.command(cls=Command)`)."""


class Group(_OneLineUsage, click.Group):
    """A group whose usage errors are one line (`@click.group(cls=Group)`)."""


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: the file it concerns and the system's reason."""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device{f' ({exc.filename})' if exc.filename else ''}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def user_errors(func: F) -> F:
    """The top-level handler: every failure becomes one `error:` line and an exit code.

    MfpiError: its exit code (2, or 130 for an interrupted run); OSError (missing file,
    permission, full disk, ...): 2; Ctrl-C: 130; anything else: 1, as `error: unexpected ...`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own usage errors and exits
        except MfpiError as exc:
            _print_traceback()
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _print_traceback()
            fail("interrupted", 130)
        except OSError as exc:
            _print_traceback()
            fail(os_error_line(exc))
        except Exception as exc:  # a bug: say so in one line, traceback on request
            _print_traceback()
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            fail(
                f"unexpected {type(exc).__name__}{f': {first}' if first else ''} (set {DEBUG_ENV}=1 for the traceback)",
                1,
            )
        return None

    return wrapper  # type: ignore[return-value]


def _print_traceback() -> None:
    if debug_enabled():
        traceback.print_exc()


def _quiet_shutdown() -> None:
    """Before exiting on an error: let zarr's background writes finish (a failed write leaves the
    others running; at exit they would print 'Task exception was never retrieved' and friends)."""
    if "zarr" in sys.modules:
        from mfpi_deploy.output.zarr_stack import settle_io

        settle_io()
