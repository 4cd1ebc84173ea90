"""What every command shares: one-line errors with a non-zero exit, never a traceback."""
from __future__ import annotations

import errno
import functools
import sys
from typing import Any, Callable, TypeVar

import click

from mfpi_deploy.errors import MfpiError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> None:
    """Print `error: message` on one line to stderr and exit with `code`."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


def user_errors(func: F) -> F:
    """Turn MfpiError, missing files and Ctrl-C into one line and an exit code (2, 2, 130)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MfpiError as exc:
            fail(str(exc), exc.exit_code)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            fail(f"{exc.filename}: {exc.strerror}")
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                fail(f"no space left on device{f' ({exc.filename})' if exc.filename else ''}")
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        return None

    return wrapper  # type: ignore[return-value]
