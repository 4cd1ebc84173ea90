"""Physically based simulator of multi-focal bright-field cytology stacks (see `simulate`)."""

from __future__ import annotations

from mfpi_deploy.synth.simulate import SimConfig, defocus_otf, plane_positions_um, simulate_stack, write_stack

__all__ = ["SimConfig", "simulate_stack", "write_stack", "plane_positions_um", "defocus_otf"]
