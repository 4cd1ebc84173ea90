"""Why a slide run stopped: interrupted (resumable), failed part-way, or taken over by another client."""

from __future__ import annotations

from mfpi_deploy.errors import MfpiError


class RunInterrupted(MfpiError):
    """Ctrl-C or SIGTERM during a run; the partial run can be resumed."""

    exit_code = 130


class RunFailed(MfpiError):
    """A run that stopped part-way for a reason outside the input (disk full, engine error)."""


class RunSuperseded(MfpiError):
    """Another run (a resumed client, a newer command) owns this partial run now; this one stops."""
