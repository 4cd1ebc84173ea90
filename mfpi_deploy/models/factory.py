"""One factory for every network: create_model(name, **config)."""

from __future__ import annotations

from typing import Any

from torch import nn

from mfpi_deploy.models.configs import Architecture, config_class, make_config
from mfpi_deploy.models.deepz import DeepZGenerator
from mfpi_deploy.models.discriminator import MFPINetDiscriminator
from mfpi_deploy.models.mfpinet import MFPINetGenerator

__all__ = ["Architecture", "config_class", "create_model", "make_config"]

_NETWORKS: dict[Architecture, type[nn.Module]] = {
    Architecture.MFPINET: MFPINetGenerator,
    Architecture.MFPINET_DISCRIMINATOR: MFPINetDiscriminator,
    Architecture.DEEPZ: DeepZGenerator,
}


def create_model(name: str | Architecture, **config: Any) -> nn.Module:
    """Create a network by architecture name, e.g. create_model("mfpinet", in_channels=1, width=16)."""
    arch = Architecture.parse(name)
    return _NETWORKS[arch](make_config(arch, **config))
