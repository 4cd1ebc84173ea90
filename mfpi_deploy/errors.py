"""User-facing errors: anything a user can cause (bad file, bad option) raises MfpiError.

Commands turn an MfpiError into one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations


class MfpiError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""

    exit_code = 2

    def __str__(self) -> str:
        # One line, always: a multi-line message would break "one-line error".
        return " ".join(str(self.args[0] if self.args else "").split()) if self.args else ""


class InputShapeError(MfpiError, ValueError):
    """An input whose shape the network cannot take (channels, stride)."""


class CheckpointError(MfpiError):
    """A checkpoint that is missing, corrupt, unsafe or does not match the architecture."""
