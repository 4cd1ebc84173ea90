"""Networks of MFPINet and of the Deep-Z baseline, with one factory and a profiler.

The configurations (`models.configs`) import without torch; the networks, the factory and the
profiler load torch when first named (PEP 562), so reading a model card or an engine folder
does not pull torch into a process that never builds a network (`mfpi-run` on onnxruntime).
"""

from __future__ import annotations

import importlib
from typing import Any

from mfpi_deploy.models.configs import (
    Architecture,
    DeepZConfig,
    DiscriminatorConfig,
    MFPINetConfig,
    dpm_value,
    make_config,
    stack_dpm_values,
)

_LAZY = {
    "create_model": "factory",
    "profile_model": "flops",
    "ModelProfile": "flops",
    "MFPINetGenerator": "mfpinet",
    "MFPINetDiscriminator": "discriminator",
    "DeepZGenerator": "deepz",
    "DeepZStack": "deepz",
    "dpm_channel": "deepz",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
