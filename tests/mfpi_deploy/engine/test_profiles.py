"""Pure shape logic behind TensorRT profiles and buffers."""

from __future__ import annotations

import pytest

from mfpi_deploy.engine.profiles import (
    buffer_bytes,
    engine_target_key,
    io_shapes,
    make_profiles,
    pick_profile,
    profile_shapes,
    validate_tiles,
)
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import InputShapeError
from mfpi_deploy.tiling import TileProfile

MFPI = EngineSpec(architecture="mfpinet", channels=3, planes=11, scale=2, stride=8, planes_um=tuple(range(11)))
DEEPZ = EngineSpec(architecture="deepz", channels=3, planes=1, scale=1, stride=16, planes_um=tuple(range(11)))


def test_validate_tiles():
    validate_tiles((8, 384, 512), 8)
    with pytest.raises(InputShapeError, match="tile size 100 .* stride 8 \\(use 96 or 104\\)"):
        validate_tiles((384, 100), 8)
    for small in (7, -8):  # one size to suggest, said once
        with pytest.raises(InputShapeError, match=f"tile size {small} .* stride 8 \\(use 8\\)$"):
            validate_tiles((small,), 8)
    with pytest.raises(InputShapeError, match="stride 16"):
        validate_tiles((24,), 16)
    with pytest.raises(InputShapeError):
        validate_tiles((-8,), 8)


def test_profiles_cover_every_side_once():
    profiles = make_profiles((512, 256, 256), (1, 8, 4), 8)
    assert profiles == (
        TileProfile(opt_tile=256, min_tile=8, max_tile=256, opt_batch=8, max_batch=8),
        TileProfile(opt_tile=512, min_tile=264, max_tile=512, opt_batch=8, max_batch=8),
    )
    for side in range(8, 513, 8):
        assert sum(p.accepts(side, side, 1) for p in profiles) == 1
    assert pick_profile(profiles, 256, 256, 8) == 0 and pick_profile(profiles, 264, 512, 2) == 1
    with pytest.raises(InputShapeError, match="fits none of the engine's profiles 8-256px x8, 264-512px x8"):
        pick_profile(profiles, 520, 520, 1)
    with pytest.raises(InputShapeError):
        pick_profile(profiles, 64, 64, 9)


def test_profile_shapes_for_tensorrt():
    p = TileProfile(opt_tile=384, min_tile=8, max_tile=384, opt_batch=4, max_batch=4)
    (tiles,) = profile_shapes(MFPI, p)
    assert (tiles.name, tiles.min, tiles.opt, tiles.max) == ("tiles", (1, 8, 8, 3), (4, 384, 384, 3), (4, 384, 384, 3))
    tiles, dpm = profile_shapes(DEEPZ, TileProfile(opt_tile=256, min_tile=16, max_tile=256, opt_batch=2, max_batch=6))
    assert tiles.max == (6, 256, 256, 3) and (dpm.name, dpm.min, dpm.opt, dpm.max) == ("dpm", (1,), (2,), (6,))


def test_buffer_sizes_fit_the_largest_batch():
    profiles = make_profiles((256, 384), (4,), 8)
    sizes = buffer_bytes(MFPI, profiles)
    assert sizes == {"tiles": 4 * 384 * 384 * 3, "planes": 4 * 11 * 768 * 768 * 3}
    z = buffer_bytes(DEEPZ, make_profiles((256,), (2,), 16))
    assert z == {"tiles": 2 * 256 * 256 * 3, "planes": 2 * 256 * 256 * 3, "dpm": 8}


def test_io_shapes():
    assert io_shapes(MFPI, 2, 64, 32) == {"tiles": (2, 64, 32, 3), "planes": (2, 11, 128, 64, 3)}
    assert io_shapes(DEEPZ, 3, 32, 48) == {"tiles": (3, 32, 48, 3), "planes": (3, 32, 48, 3), "dpm": (3,)}


def test_engine_target_key():
    assert engine_target_key("NVIDIA GeForce RTX 4090", "8.9", "10.9.0") == "nvidia-geforce-rtx-4090_sm89_trt10.9.0"
