"""One factory for every network: create_model(name, **config)."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from mfpi_deploy.choices import Choice
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models.deepz import DeepZConfig, DeepZGenerator
from mfpi_deploy.models.discriminator import DiscriminatorConfig, MFPINetDiscriminator
from mfpi_deploy.models.mfpinet import MFPINetConfig, MFPINetGenerator


class Architecture(Choice):
    """Names accepted by create_model (and stored in model cards)."""

    MFPINET = "mfpinet"
    MFPINET_DISCRIMINATOR = "mfpinet_discriminator"
    DEEPZ = "deepz"

    @property
    def label(self) -> str:
        """The name people read in tables and plots."""
        return {"mfpinet": "MFPINet", "mfpinet_discriminator": "MFPINet discriminator", "deepz": "Deep-Z"}[self.value]


_REGISTRY: dict[Architecture, tuple[type, type[nn.Module]]] = {
    Architecture.MFPINET: (MFPINetConfig, MFPINetGenerator),
    Architecture.MFPINET_DISCRIMINATOR: (DiscriminatorConfig, MFPINetDiscriminator),
    Architecture.DEEPZ: (DeepZConfig, DeepZGenerator),
}


def config_class(name: str | Architecture) -> type:
    """The config dataclass of an architecture."""
    return _REGISTRY[Architecture.parse(name)][0]


def make_config(name: str | Architecture, **config: Any) -> Any:
    """Build an architecture's config dataclass, with a clear error for unknown fields."""
    cls = config_class(name)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise MfpiError(
            f"unknown option(s) {', '.join(unknown)} for {Architecture.parse(name).value}; "
            f"known: {', '.join(sorted(known))}"
        )
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise MfpiError(f"bad config for {Architecture.parse(name).value}: {exc}") from None


def create_model(name: str | Architecture, **config: Any) -> nn.Module:
    """Create a network by architecture name, e.g. create_model("mfpinet", in_channels=1, width=16)."""
    arch = Architecture.parse(name)
    return _REGISTRY[arch][1](make_config(arch, **config))
