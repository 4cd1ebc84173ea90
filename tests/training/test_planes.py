from __future__ import annotations

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from training.planes import find_focus, select_planes, sharpness
from training.stack import open_stack


def _stack_sharp_at(tmp_path, planes: int, sharp: int):
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (64, 64)).astype(np.float32)
    data = []
    for z in range(planes):
        k = 1 + 2 * abs(z - sharp)  # box blur grows with distance from the sharp plane
        img = texture.copy()
        if k > 1:
            img = np.mean([np.roll(texture, s, axis=a) for a in (0, 1) for s in range(-(k // 2), k // 2 + 1)], axis=0)
        data.append(img)
    p = tmp_path / "s.tif"
    tifffile.imwrite(p, np.stack(data).astype(np.uint8), photometric="minisblack")
    return open_stack(p)


def test_sharpness_prefers_texture():
    flat = np.full((32, 32), 100, np.uint8)
    noisy = np.random.default_rng(0).integers(0, 255, (32, 32)).astype(np.uint8)
    assert sharpness(noisy) > sharpness(flat) == 0.0


def test_default_selection_centres_on_sharpest_plane(tmp_path):
    st = _stack_sharp_at(tmp_path, 13, 7)
    assert find_focus(st) == 7
    sel = select_planes(st, planes=11)
    assert sel.input == 7 and sel.target == tuple(range(2, 13)) and sel.centre_index == 5
    assert sel.offsets_in_steps and sel.offsets_um == tuple(float(i) for i in range(-5, 6))


def test_window_moves_inwards_at_stack_end(tmp_path):
    st = _stack_sharp_at(tmp_path, 13, 11)
    sel = select_planes(st, planes=11)
    assert sel.target == tuple(range(2, 13)) and sel.input == 11 and sel.centre_index == 9
    assert sel.offsets_um[0] == -9.0 and sel.offsets_um[-1] == 1.0


def test_middle_index_and_step(tmp_path):
    st = _stack_sharp_at(tmp_path, 13, 2)
    assert select_planes(st, planes=11, focus="middle").input == 6
    sel = select_planes(st, planes=3, focus=4, z_step_um=2.7)
    assert sel.target == (3, 4, 5) and sel.offsets_um == (-2.7, 0.0, 2.7) and not sel.offsets_in_steps
    with pytest.raises(MfpiError, match="odd"):
        select_planes(st, planes=4, focus="middle")
    with pytest.raises(MfpiError, match="has 13"):
        select_planes(st, planes=15, focus="middle")
    with pytest.raises(MfpiError, match="focus rule"):
        select_planes(st, planes=3, focus="best")
    for step in (0.0, -1.0, float("nan")):  # every plane at 0 um, or reversed: refused
        with pytest.raises(MfpiError, match="--z-step-um must be a positive number"):
            select_planes(st, planes=3, z_step_um=step)
    with pytest.raises(MfpiError, match="--planes must be a positive odd number, got 0"):
        select_planes(st, planes=0)


def test_offsets_from_ome_positions(sim_path):
    sel = select_planes(open_stack(sim_path), planes=3, focus="middle")
    assert sel.target == (1, 2, 3) and sel.offsets_um == (-2.7, 0.0, 2.7) and not sel.offsets_in_steps
