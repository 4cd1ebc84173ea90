"""The generator's weights averaged over the run (stochastic weight averaging, uniform): what a run
validates, keeps in best/ and last/, and so what users export.

Why: on the small real stacks a lab trains on, single checkpoints over-fit the training region
and differ a lot from one validation to the next; the uniform average of a run's weights beat the
best single checkpoint on every held-out quarter measured (benchmarks/training/heldout). The
average starts once the learning-rate warm-up is over; torch's `AveragedModel` keeps it.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

PREFIX = "gen."  # the raw generator's tensors in the training state, when last/ holds the average


class WeightAverage:
    """A uniform running average of `gen`'s parameters and buffers from the first `update`."""

    def __init__(self, gen: torch.nn.Module) -> None:
        self.avg = AveragedModel(gen, use_buffers=True)

    @property
    def count(self) -> int:
        """How many steps are in the average (0: none yet; the raw generator stands in)."""
        return int(self.avg.n_averaged.item())

    def update(self, gen: torch.nn.Module) -> None:
        self.avg.update_parameters(gen)

    def model(self, gen: torch.nn.Module) -> torch.nn.Module:
        """The generator to validate and save: the average, or `gen` itself before the first update."""
        return self.avg.module if self.count else gen

    def restore(self, weights: dict[str, torch.Tensor], count: int) -> None:
        """Continue an average of `count` steps whose weights are `weights` (a resumed run)."""
        self.avg.module.load_state_dict(weights)
        self.avg.n_averaged.fill_(count)


def raw_tensors(gen: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The raw generator's state as training-state tensors (`gen.<name>`)."""
    return {PREFIX + k: v.detach().cpu().contiguous() for k, v in gen.state_dict().items()}


def raw_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The raw generator's state back from training-state tensors ({} if the state has none)."""
    return {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
