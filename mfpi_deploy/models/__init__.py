"""Networks of MFPINet and of the Deep-Z baseline, with one factory and a profiler."""

from __future__ import annotations

from mfpi_deploy.models.deepz import DeepZConfig, DeepZGenerator, DeepZStack, dpm_channel, dpm_value, stack_dpm_values
from mfpi_deploy.models.discriminator import DiscriminatorConfig, MFPINetDiscriminator
from mfpi_deploy.models.factory import Architecture, create_model, make_config
from mfpi_deploy.models.flops import ModelProfile, profile_model
from mfpi_deploy.models.mfpinet import MFPINetConfig, MFPINetGenerator

__all__ = [
    "Architecture",
    "create_model",
    "make_config",
    "profile_model",
    "ModelProfile",
    "MFPINetConfig",
    "MFPINetGenerator",
    "DiscriminatorConfig",
    "MFPINetDiscriminator",
    "DeepZConfig",
    "DeepZGenerator",
    "DeepZStack",
    "stack_dpm_values",
    "dpm_channel",
    "dpm_value",
]
