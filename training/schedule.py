"""The training schedule over the planned run: how far along a run is, its learning rate, and
when the adversarial term joins. Pure functions of progress, so resume needs no scheduler state.

A run is planned as `epochs x steps_per_epoch` steps, or, with a time budget, as that many
minutes, whichever ends first; `run_fraction` is how much of that plan is done. The default
schedule is a short linear warm-up and a cosine decay to `final` x the base rate at the end of
the plan, so the rate reaches its floor when the budget does, however long the budget is. The
paper's schedule (halve every N epochs) stays available as `step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mfpi_deploy.choices import Choice


class LrSchedule(Choice):
    """cosine: warm-up then cosine decay over the planned run; step: the paper's halving every N epochs."""

    COSINE = "cosine"
    STEP = "step"


def run_fraction(step: int, planned_steps: int, elapsed_s: float, planned_s: float | None) -> float:
    """Share of the planned run that is done (steps, or time when a budget is set; the larger)."""
    done = step / max(planned_steps, 1)
    if planned_s:
        done = max(done, elapsed_s / planned_s)
    return done


@dataclass(frozen=True)
class Schedule:
    """Learning rate and adversarial start as functions of progress."""

    kind: LrSchedule = LrSchedule.COSINE
    base_lr: float = 5e-4
    warmup: float = 0.02  # share of the run with a linear warm-up (cosine)
    final: float = 0.01  # rate at the end of the run, relative to base_lr (cosine)
    halve_every: int = 2  # epochs (step)
    adv_start: float = 0.5  # share of the run done before the adversarial term joins

    def lr(self, fraction: float, epoch: int) -> float:
        if self.kind is LrSchedule.STEP:
            return self.base_lr * 0.5 ** (epoch // self.halve_every)
        f = min(max(fraction, 0.0), 1.0)
        if self.warmup > 0 and f < self.warmup:
            return self.base_lr * max(f / self.warmup, 0.01)
        t = (f - self.warmup) / max(1.0 - self.warmup, 1e-9)
        floor = self.base_lr * self.final
        return floor + (self.base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    def adversarial(self, fraction: float) -> bool:
        return fraction >= self.adv_start
