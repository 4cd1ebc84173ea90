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
    ],
)
def test_settings_no_run_can_use_are_refused(bad: dict, says: str) -> None:
    with pytest.raises(MfpiError, match=says):
        TrainConfig(**bad)


def test_the_defaults_and_a_positive_step_are_accepted() -> None:
    assert TrainConfig(z_step_um=2.7, threads=0, max_minutes=0.5).z_step_um == 2.7
