"""TrainConfig refuses settings no run can use, before any data is read."""

from __future__ import annotations

import pytest

from mfpi_deploy.errors import MfpiError
from training.config import TrainConfig


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"width": 0}, "width must be positive, got 0"),  # was a ZeroDivisionError from the default lr
        ({"planes": 0}, "planes must be positive"),
        ({"threads": -1}, "threads must be 0"),
        ({"max_minutes": -1.0}, "max_minutes must be positive"),
        ({"z_step_um": 0.0}, "z_step_um must be a positive number"),
        ({"z_step_um": -2.7}, "z_step_um must be a positive number"),
        ({"lr": float("nan")}, "lr must be positive"),  # was torch's "Invalid learning rate: nan", exit 1
        ({"adv_weight": float("inf")}, "adv_weight non-negative"),
        ({"warmup_epochs": -1}, "warmup_epochs must be 0 or more"),
    ],
)
def test_settings_no_run_can_use_are_refused(bad: dict, says: str) -> None:
    with pytest.raises(MfpiError, match=says):
        TrainConfig(**bad)


def test_the_defaults_and_a_positive_step_are_accepted() -> None:
    assert TrainConfig(z_step_um=2.7, threads=0, max_minutes=0.5).z_step_um == 2.7


def test_steps_in_epoch_count_what_the_plan_runs() -> None:
    cut = TrainConfig(max_steps=250, steps_per_epoch=100)
    assert cut.epochs == 3 and [cut.steps_in_epoch(e) for e in range(4)] == [100, 100, 50, 0]
    assert TrainConfig(max_steps=10, steps_per_epoch=1000).steps_in_epoch(0) == 10  # the bar counts to 10
    whole = TrainConfig(epochs=2, steps_per_epoch=100)
    assert [whole.steps_in_epoch(e) for e in range(2)] == [100, 100]


@pytest.mark.parametrize(("std", "fraction"), [(-1.0, 0.25), (float("nan"), 0.25), (4.0, 1.5)])
def test_a_foreground_test_no_patch_could_pass_or_fail_is_refused(std: float, fraction: float) -> None:
    from training.patches import Foreground

    with pytest.raises(MfpiError, match="--fg-min-std must be 0 or more and --fg-min-fraction 0..1"):
        Foreground(std, fraction)
