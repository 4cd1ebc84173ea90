"""The networks' configurations and architecture names, without torch: model cards, engine folders
and the run path read them on machines (and in processes) that never build a network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mfpi_deploy.choices import Choice
from mfpi_deploy.errors import MfpiError


class Architecture(Choice):
    """Names accepted by create_model (and stored in model cards)."""

    MFPINET = "mfpinet"
    MFPINET_DISCRIMINATOR = "mfpinet_discriminator"
    DEEPZ = "deepz"

    @property
    def label(self) -> str:
        """The name people read in tables and plots."""
        return {"mfpinet": "MFPINet", "mfpinet_discriminator": "MFPINet discriminator", "deepz": "Deep-Z"}[self.value]


@dataclass(frozen=True)
class MFPINetConfig:
    """Configuration of the generator; defaults are the paper's (RGB, 11 planes, width 64).

    residual: each output plane is the bicubic 2x upsampling of the input plus the network's
    correction (no tanh), with the last conv zero at initialisation, so a fresh network equals
    the bicubic baseline. Same parameters as the paper's form; the upsampling is a fixed op.
    """

    in_channels: int = 3
    planes: int = 11
    width: int = 64
    residual: bool = False

    STRIDE = 8  # three 2x2 poolings
    SCALE = 2  # output is twice the input size

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {self.in_channels}")
        if self.planes < 1 or self.width < 1:
            raise ValueError("planes and width must be positive")

    @property
    def out_channels(self) -> int:
        return self.planes * self.in_channels


@dataclass(frozen=True)
class DiscriminatorConfig:
    """in_channels is planes x colour channels (33 for 11 RGB planes); width 64 is the paper's."""

    in_channels: int = 33
    width: int = 64


@dataclass(frozen=True)
class DeepZConfig:
    """in_channels counts the DPM channel (RGB + DPM = 4); width is level 1's (48 in the paper);
    scale: bicubic upsampling of the input before the network (1 in the authors' code)."""

    in_channels: int = 4
    width: int = 48
    scale: int = 1

    STRIDE = 16  # four 2x2 poolings, at the upsampled size

    def __post_init__(self) -> None:
        if self.scale < 1 or self.STRIDE % self.scale:
            raise ValueError(f"Deep-Z scale must divide {self.STRIDE}, got {self.scale}")
        if self.in_channels < 2:
            raise ValueError("Deep-Z takes the image channels plus one DPM channel (>= 2)")
        if self.width % self.in_channels or self.width % 2:
            raise ValueError(
                f"Deep-Z width ({self.width}) must be even and a multiple of in_channels "
                f"({self.in_channels}): level 1 adds the input repeated width/in_channels times"
            )

    @property
    def image_channels(self) -> int:
        return self.in_channels - 1

    @property
    def input_stride(self) -> int:
        """Input sides must be multiples of this (the grid of the upsampled size)."""
        return self.STRIDE // self.scale


def dpm_value(plane_index: int) -> float:
    """DPM constant of the authors' code for plane_index in -5..+5 (0 = in focus)."""
    return (plane_index + 1e-4) / 2


def stack_dpm_values(planes: int) -> list[float]:
    """DPM constants of a stack's planes, most negative z first (plane `planes // 2` in focus)."""
    return [dpm_value(i - planes // 2) for i in range(planes)]


CONFIGS: dict[Architecture, type] = {
    Architecture.MFPINET: MFPINetConfig,
    Architecture.MFPINET_DISCRIMINATOR: DiscriminatorConfig,
    Architecture.DEEPZ: DeepZConfig,
}


def config_class(name: str | Architecture) -> type:
    """The config dataclass of an architecture."""
    return CONFIGS[Architecture.parse(name)]


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
