"""A big slide's regions: whole batches of its plan (so the engine sees the batches of a
single-process run), each batch in exactly one region, rows kept whole where batches allow."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mfpi_deploy.cohort.tasks import split_regions
from mfpi_deploy.tiling import TilePlan, batches


def _run(height: int, width: int, tile: int, halo: int, batch: int) -> SimpleNamespace:
    plan = TilePlan(height, width, tile, halo)
    return SimpleNamespace(plan=plan, batch=batch, groups=batches(plan.n_tiles, batch))


@pytest.mark.parametrize(
    "shape, parts",
    [
        ((4096, 4096, 688, 48, 1), 16),
        ((4096, 4096, 688, 48, 1), 2),
        ((192, 256, 96, 16, 2), 16),
        ((384, 320, 96, 16, 2), 8),
        ((100, 1000, 96, 16, 3), 4),
        ((40, 40, 96, 16, 4), 8),
    ],
)
def test_regions_partition_the_batches(shape: tuple, parts: int) -> None:
    run = _run(*shape)
    regions = split_regions(run, parts)
    assert [b for r in regions for b in r] == list(range(len(run.groups)))  # in order, each batch once
    assert all(r == list(range(r[0], r[-1] + 1)) for r in regions)  # contiguous
    if run.plan.cols % run.batch == 0:  # batches tile the rows: a region never spans a row boundary mid-row
        per_row = run.plan.cols // run.batch
        for r in regions:
            assert r[0] % per_row == 0 or r[0] // per_row == r[-1] // per_row


def test_a_row_band_per_region_when_rows_are_small() -> None:
    regions = split_regions(_run(4096, 4096, 688, 48, 1), 2)  # 7 x 7 tiles, batch 1
    assert [len(r) for r in regions] == [28, 21]  # 4 and 3 whole rows
