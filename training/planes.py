"""Which planes of a stack form the target, which one is the input, and their z offsets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide.focus import sharpness
from mfpi_deploy.tiling import Box
from training.stack import FocalStack


class FocusRule(str, Enum):
    """How the in-focus plane of a stack is found: the sharpest plane, or the middle one."""

    SHARPEST = "sharpest"
    MIDDLE = "middle"


@dataclass(frozen=True)
class PlaneSelection:
    """Stack indices of the target planes (most negative z first), of the input plane, and offsets.

    `offsets_um` are z offsets relative to the input plane, in micrometres when the stack
    records z positions or a step is given, otherwise in plane steps (`offsets_in_steps`).
    """

    target: tuple[int, ...]
    input: int
    offsets_um: tuple[float, ...]
    offsets_in_steps: bool = False

    @property
    def centre_index(self) -> int:
        """Position of the input plane within the target planes."""
        return self.target.index(self.input)


def find_focus(stack: FocalStack) -> int:
    """Index of the sharpest plane, measured on the central block (at most 512x512) of the stack.

    A property of the stack, not of a region: training on one part and evaluating on another
    select the same planes.
    """
    rect = stack.bounds
    size_y, size_x = min(512, rect.height), min(512, rect.width)
    y0 = rect.y0 + (rect.height - size_y) // 2
    x0 = rect.x0 + (rect.width - size_x) // 2
    block = stack.read(range(stack.planes), Box(y0, x0, y0 + size_y, x0 + size_x))
    return int(np.argmax([sharpness(p) for p in block]))


def check_z_step(z_step_um: float | None, name: str = "--z-step-um") -> None:
    """Refuse a z step that is not a positive number of micrometres (0 puts every plane at 0 um,
    a negative one reverses them); None: the stack's own spacing."""
    if z_step_um is not None and not (math.isfinite(z_step_um) and z_step_um > 0):
        raise MfpiError(f"{name} must be a positive number of micrometres, got {z_step_um}")


def select_planes(
    stack: FocalStack,
    *,
    planes: int = 11,
    focus: FocusRule | str | int = FocusRule.SHARPEST,
    z_step_um: float | None = None,
) -> PlaneSelection:
    """`planes` consecutive planes centred on the in-focus plane (moved inwards at the stack ends)."""
    n = stack.planes
    check_z_step(z_step_um)
    if planes < 1:
        raise MfpiError(f"--planes must be a positive odd number, got {planes}")
    if planes > n:
        raise MfpiError(f"{stack.name}: asked for {planes} target planes but the stack has {n}")
    if planes % 2 == 0:
        raise MfpiError(f"target planes must be odd so the input plane is the centre, got {planes}")
    if isinstance(focus, int) or (isinstance(focus, str) and focus.lstrip("-").isdigit()):
        centre = int(focus)
        if not 0 <= centre < n:
            raise MfpiError(f"{stack.name}: focus plane {centre} is outside 0..{n - 1}")
    else:
        try:
            rule = FocusRule(focus)
        except ValueError:
            raise MfpiError(
                f"unknown focus rule {focus!r}; expected a plane index or one of: sharpest, middle"
            ) from None
        centre = (n - 1) // 2 if rule is FocusRule.MIDDLE else find_focus(stack)
    half = planes // 2
    start = min(max(centre - half, 0), n - planes)
    target = tuple(range(start, start + planes))
    if centre not in target:  # cannot happen, kept as a guard for the arithmetic above
        raise MfpiError(f"{stack.name}: focus plane {centre} not in the target planes")
    if z_step_um is not None:
        offsets = tuple(round((z - centre) * z_step_um, 4) for z in target)
        in_steps = False
    elif stack.planes_um is not None:
        offsets = tuple(round(stack.planes_um[z] - stack.planes_um[centre], 4) for z in target)
        in_steps = False
    else:
        offsets = tuple(float(z - centre) for z in target)
        in_steps = True
    return PlaneSelection(target, centre, offsets, in_steps)
