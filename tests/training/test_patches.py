from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.tiling import Box
from training.patches import (
    CELL,
    VAL_MAX,
    VAL_MIN,
    Foreground,
    Region,
    candidate_patches,
    draw,
    is_foreground,
    split_blocks,
    spread_choice,
    validation_patches,
)


def test_split_has_no_overlap_and_is_reproducible():
    rect = Box(0, 0, 1024, 768)
    train, val = split_blocks(rect, 256, 0.17, seed=0)
    assert len(train) + len(val) == 12 and len(val) == 2
    for t in train:
        for v in val:
            assert not t.rect.overlaps(v.rect)
    # every pixel of the split belongs to exactly one block
    cover = np.zeros((1024, 768), int)
    for b in train + val:
        cover[b.rect.y0 : b.rect.y1, b.rect.x0 : b.rect.x1] += 1
    assert cover.max() == 1 and cover.min() == 1
    assert split_blocks(rect, 256, 0.17, seed=0) == (train, val)
    assert split_blocks(rect, 256, 0.17, seed=1)[1] != val


def test_validation_blocks_are_spread_over_the_region():
    """Validation blocks, whatever the seed, are never all in one half of the grid: every seed's
    choice has one block in each of `count` consecutive stretches of the serpentine walk."""
    rows, cols, count = 6, 8, 4
    walk = [r * cols + (c if r % 2 == 0 else cols - 1 - c) for r in range(rows) for c in range(cols)]
    stretch = len(walk) // count
    choices = set()
    for seed in range(20):
        chosen = spread_choice(rows, cols, count, np.random.default_rng(seed))
        assert len(chosen) == count
        positions = sorted(walk.index(i) for i in chosen)
        assert [p // stretch for p in positions] == list(range(count))
        choices.add(tuple(chosen))
    assert len(choices) > 1  # the seed still matters


def test_validation_set_is_sized_from_its_area_without_repeats():
    cands = [(0, Box(y, x, y + 32, x + 32)) for y in range(0, 512, 8) for x in range(0, 512, 8)]
    two_blocks = 2 * 128 * 128
    val = validation_patches(cands, two_blocks, 32)
    assert len(val) == 2 * two_blocks // 32**2 == len(set(val))  # covers the area twice, no patch twice
    assert len(validation_patches(cands, 64 * 64, 64)) == VAL_MIN
    assert len(validation_patches(cands, 10**8, 32)) == VAL_MAX
    assert validation_patches(cands[:5], two_blocks, 32) == cands[:5]  # fewer candidates: all of them
    assert len(validation_patches(cands, two_blocks, 32, count=7)) == 7


def test_patches_stay_inside_their_blocks():
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 255, (256, 256, 1)).astype(np.uint8)
    train, val = split_blocks(Box(0, 0, 256, 256), 128, 0.25, seed=0)
    for block in train + val:
        sub = plane[block.rect.y0 : block.rect.y1, block.rect.x0 : block.rect.x1]
        cands = candidate_patches(block, sub, 64, Foreground())
        assert len(cands) == ((128 - 64) // CELL + 1) ** 2  # all noise: every position is foreground
        assert all(block.rect.contains(c) for c in cands)
        other = [b for b in train + val if b != block]
        assert not any(c.overlaps(o.rect) for c in cands for o in other)


def test_foreground_filter_skips_empty_background():
    rng = np.random.default_rng(0)
    plane = np.clip(230 + rng.normal(0, 1.0, (256, 256, 3)), 0, 255).astype(np.uint8)  # empty glass + noise
    yy, xx = np.mgrid[:256, :256]
    cell = (yy - 60) ** 2 + (xx - 190) ** 2 < 30**2
    plane[cell] = (120 + rng.normal(0, 20, (cell.sum(), 3))).clip(0, 255).astype(np.uint8)
    region = Region(0, Box(0, 0, 256, 256))
    cands = candidate_patches(region, plane, 64, Foreground(min_std=4.0, min_fraction=0.25))
    assert cands, "the cell must give patches"
    for c in cands:
        assert cell[c.y0 : c.y1, c.x0 : c.x1].mean() > 0.15
        assert is_foreground(plane[c.y0 : c.y1, c.x0 : c.x1], Foreground())
    assert not is_foreground(plane[160:224, 0:64], Foreground())
    empty = np.clip(230 + rng.normal(0, 1.0, (128, 128, 3)), 0, 255).astype(np.uint8)
    assert candidate_patches(Region(0, Box(0, 0, 128, 128)), empty, 64, Foreground()) == []


def test_draw_is_reproducible_and_refuses_nothing():
    cands = [(0, Box(i, 0, i + 8, 8)) for i in range(0, 80, 8)]
    a = draw(cands, 20, np.random.default_rng([0, 1]))
    b = draw(cands, 20, np.random.default_rng([0, 1]))
    assert a == b and len(a) == 20
    with pytest.raises(MfpiError, match="foreground"):
        draw([], 4, np.random.default_rng(0))


def test_bad_split_arguments():
    with pytest.raises(MfpiError):
        split_blocks(Box(0, 0, 100, 100), 256, 0.1, 0)
    with pytest.raises(MfpiError):
        split_blocks(Box(0, 0, 512, 512), 100, 0.1, 0)


def test_candidates_are_thinned_per_block():
    plane = np.random.default_rng(0).integers(0, 255, (256, 256, 1)).astype(np.uint8)
    region = Region(0, Box(0, 0, 256, 256))
    full = candidate_patches(region, plane, 64, Foreground())
    thin = candidate_patches(region, plane, 64, Foreground(), max_per_block=50)
    assert len(full) == 25**2 and len(thin) == 50 and set(thin) <= set(full)


def test_sizes_fit_small_regions_and_errors_name_the_cause():
    from training.patches import fit_sizes

    assert fit_sizes([(1024, 768)], None, None, 0.15) == (128, 256)  # large regions: the defaults
    patch, block = fit_sizes([(292, 255)], None, None, 0.15)  # a few hundred pixels: smaller, >= 6 blocks
    assert (292 // block) * (255 // block) >= 6 and patch <= block and patch % 16 == 0
    patch, block = fit_sizes([(165, 118)], None, None, 0.15)
    assert patch >= 32 and (165 // block) * (118 // block) >= 2
    assert fit_sizes([(300, 300)], None, 64, 0.15) == (48, 64)  # a given block: the patch fits in it
    with pytest.raises(MfpiError, match=r"patch 128 px is larger than the block of 64 px.*--patch 64 or less"):
        fit_sizes([(300, 300)], 128, 64, 0.15)
    with pytest.raises(MfpiError, match=r"holds 0 block\(s\) of 512 px but needs 2.*--block"):
        fit_sizes([(300, 300)], None, 512, 0.15)
    with pytest.raises(MfpiError, match="too small.*--region"):
        fit_sizes([(40, 40)], None, None, 0.15)
