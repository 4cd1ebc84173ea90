"""Options given by name (architecture, backend, exporter, ...): str enums with a helpful error."""

from __future__ import annotations

import re
from enum import Enum
from typing import TypeVar

from mfpi_deploy.errors import MfpiError

E = TypeVar("E", bound="Choice")


class Choice(str, Enum):
    """A str enum whose `parse` names the valid values when given an unknown one."""

    @classmethod
    def parse(cls: type[E], name: str | E) -> E:
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            label = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()  # BackendKind -> backend kind
            raise MfpiError(f"unknown {label} {name!r}; expected one of: {valid}") from None
