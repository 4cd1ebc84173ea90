"""RunOptions refuses values no run can use, before anything is read or written."""

from __future__ import annotations

import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.run import RunOptions
from mfpi_deploy.tiling import DEFAULT_HALO, MAX_HALO


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"halo": -8}, "--halo must be at least 0"),
        ({"halo": MAX_HALO + 8}, f"--halo must be at most {MAX_HALO} px"),
        ({"tile": 0}, "--tile must be at least 1"),
        ({"batch": 0}, "--batch must be at least 1"),
        ({"pixel_size_um": float("nan")}, "--pixel-size"),
        ({"sync_seconds": -1.0}, "--sync-every"),
        ({"writers": 0}, "--writers"),
    ],
)
def test_values_no_run_can_use_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(MfpiError, match=message):
        RunOptions(**kwargs)


def test_the_bounds_themselves_are_accepted() -> None:
    assert RunOptions(halo=MAX_HALO).halo == MAX_HALO and RunOptions(halo=0).halo == 0
    assert DEFAULT_HALO <= MAX_HALO
