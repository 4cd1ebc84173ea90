from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.tiling import WIDE_CORE_MARGIN, TilePlan, TileProfile, batches, choose_plan, reflect_indices


@pytest.mark.parametrize("n,pad", [(1, 3), (2, 5), (5, 2), (5, 4), (5, 11), (9, 30)])
def test_reflect_indices_match_numpy_reflect_padding(n: int, pad: int) -> None:
    axis = np.arange(n)
    padded = np.pad(axis, pad, mode="reflect") if n > 1 else np.zeros(n + 2 * pad, int)
    assert np.array_equal(axis[reflect_indices(-pad, n + pad, n)], padded)


@pytest.mark.parametrize("h,w,tile,halo", [(100, 37, 64, 16), (8, 8, 32, 8), (333, 200, 96, 24), (64, 64, 64, 0)])
def test_plan_cores_cover_image_once_and_windows_sit_on_the_grid(h: int, w: int, tile: int, halo: int) -> None:
    plan = TilePlan(h, w, tile, halo)
    cover = np.zeros((h, w), int)
    for t in plan.tiles():
        cover[t.core.y0 : t.core.y1, t.core.x0 : t.core.x1] += 1
        assert t.window.y0 % 8 == 0 and t.window.x0 % 8 == 0
        assert (t.window.height, t.window.width) == (tile, tile)
        ys, xs = t.crop(halo, 2)
        assert (ys.stop - ys.start, xs.stop - xs.start) == (2 * t.core.height, 2 * t.core.width)
    assert (cover == 1).all()
    assert plan.n_tiles == -(-h // (tile - 2 * halo)) * -(-w // (tile - 2 * halo))
    assert 0 <= plan.halo_overhead < 1


def test_plan_refuses_tiles_off_grid_or_without_core() -> None:
    with pytest.raises(MfpiError):
        TilePlan(10, 10, 60, 8)
    with pytest.raises(MfpiError):
        TilePlan(10, 10, 32, 16)
    with pytest.raises(MfpiError):
        TilePlan(0, 10, 32, 8)


def test_choose_plan_minimises_computed_pixels_within_profile() -> None:
    plan, batch = choose_plan(3000, 3000, 32, [TileProfile(opt_tile=384, opt_batch=2)])
    # a dynamic engine keeps its pixels per call (2 x 384^2): tiles up to 536 px
    for size in range(72, 537, 8):
        assert plan.computed_pixels <= TilePlan(3000, 3000, size, 32).computed_pixels
    assert 384 < plan.tile <= 536 and batch == 1
    small, batch = choose_plan(3000, 3000, 32, [TileProfile(opt_tile=128, opt_batch=8)])
    assert small.tile <= 360 and batch == max(1, 8 * 128 * 128 // small.tile**2)


def test_choose_plan_fixed_profile_and_small_images() -> None:
    fixed = TileProfile(opt_tile=384, min_tile=384, max_tile=384, opt_batch=4, max_batch=4)
    plan, batch = choose_plan(50, 30, 32, [fixed])
    assert (plan.tile, plan.n_tiles, batch) == (384, 1, 1)  # batch capped at the tile count
    plan, batch = choose_plan(2000, 2000, 32, [fixed])
    assert (plan.tile, batch) == (384, 4)
    plan, batch = choose_plan(50, 30, 32, [TileProfile()])
    assert plan.tile == 56 + 64 and plan.n_tiles == 1 and batch == 1  # smallest tile holding 50 px
    with pytest.raises(MfpiError):
        choose_plan(50, 30, 32, [fixed], tile=256)


def test_batches_are_fixed_groups() -> None:
    assert batches(7, 3) == [range(0, 3), range(3, 6), range(6, 7)]


def test_a_given_tile_shrinks_to_one_tile_covering_the_image_and_off_grid_values_say_why() -> None:
    dynamic = [TileProfile()]
    plan, _ = choose_plan(256, 200, 48, dynamic, tile=100_000, scale=2)
    assert (plan.tile, plan.n_tiles) == (128 + 128 + 96, 1)  # core 256: whole 256 px output tiles at 2x
    plan, _ = choose_plan(300, 100, 48, dynamic, tile=1000, scale=2)
    assert (plan.tile, plan.core, plan.n_tiles) == (480, 384, 1)
    plan, _ = choose_plan(3000, 3000, 48, dynamic, tile=1000, scale=2)
    assert plan.tile == 1000  # a slide that needs several tiles keeps the size given
    fixed = [TileProfile(opt_tile=608, min_tile=608, max_tile=608)]
    assert choose_plan(256, 256, 48, fixed, tile=608, scale=2)[0].tile == 608  # no smaller size in its profile
    with pytest.raises(MfpiError, match="halo 5 must be a multiple of the network's stride"):
        choose_plan(256, 256, 5, dynamic)
    with pytest.raises(MfpiError, match="tile 100 must be a multiple of the network's stride"):
        choose_plan(256, 256, 48, dynamic, tile=100)


def test_a_wide_halo_on_a_small_dynamic_engine_keeps_a_core_as_wide_as_the_halo() -> None:
    small = [TileProfile(opt_tile=128, opt_batch=1)]  # pixels per call of a 128 px tile
    plan, _ = choose_plan(128, 128, 256, small, scale=2)
    assert (plan.core, plan.n_tiles) == (128, 1)  # was 8 px cores: 256 tiles of 520 px
    plan, _ = choose_plan(2000, 2000, 256, small, scale=2)
    assert plan.core >= 256 and plan.tile <= 1024
    assert choose_plan(2000, 2000, 48, small, scale=2)[0].tile <= 224  # usual halos: the engine's size as before


def test_a_host_bound_engine_takes_cores_of_whole_512_px_output_tiles_within_the_margin() -> None:
    dynamic = [TileProfile(opt_tile=384, opt_batch=4)]  # the bundled model's ONNX profile
    cpu, _ = choose_plan(16384, 16384, 48, dynamic, 8, None, 2)
    device, _ = choose_plan(16384, 16384, 48, dynamic, 8, None, 2, host_bound=True)
    assert (cpu.tile, cpu.core) == (736, 640)  # fewest pixels: 1280 px cores, 256 px output tiles
    assert (device.tile, device.core) == (608, 512)  # 1024 px cores: 512 px tiles, a level cut per tile
    assert device.computed_pixels <= (1 + WIDE_CORE_MARGIN) * cpu.computed_pixels
    # where the wide cores would compute far more (a small image in one tile), the fewest pixels win
    small, _ = choose_plan(300, 300, 48, dynamic, 8, None, 2, host_bound=True)
    assert small.tile == choose_plan(300, 300, 48, dynamic, 8, None, 2)[0].tile == 480
    assert 608**2 > (1 + WIDE_CORE_MARGIN) * 480**2  # the 608 px tile it passed over
    # a fixed profile without such a core keeps its own
    fixed = [TileProfile(opt_tile=736, min_tile=736, max_tile=736)]
    assert choose_plan(16384, 16384, 48, fixed, 8, None, 2, host_bound=True)[0].tile == 736
