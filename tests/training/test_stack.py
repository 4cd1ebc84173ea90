from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage import io as skio

from mfpi_deploy.tiling import Box
from training.stack import IntensityRule, StackError, open_stack


def test_reads_zyx_uint16_lazily_and_scales_full_range(tmp_path):
    data = np.zeros((3, 40, 48), np.uint16)
    data[0] = 65535
    data[1] = 257
    data[2, 5, 7] = 1000
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    st = open_stack(path)
    assert st.shape == (3, 40, 48, 1) and st.dtype == np.uint16
    assert not isinstance(st._sources[0], np.ndarray)  # a zarr view, not the loaded file
    out = st.read([0, 1, 2], Box(0, 0, 40, 48))
    assert out.dtype == np.uint8 and out.shape == (3, 40, 48, 1)
    assert out[0].min() == 255 and out[1].max() == 1 and out[2, 5, 7, 0] == round(1000 / 257)
    raw = st.read_raw([2], Box(5, 7, 6, 8))
    assert raw.dtype == np.uint16 and raw[0, 0, 0, 0] == 1000


def test_percentile_rule_stretches_dim_16bit(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(1000, 2000, size=(2, 64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "d.tif", data, photometric="minisblack")
    full = open_stack(tmp_path / "d.tif", rule=IntensityRule.FULL).read([0], Box(0, 0, 64, 64))
    stretched = open_stack(tmp_path / "d.tif", rule=IntensityRule.PERCENTILE).read([0], Box(0, 0, 64, 64))
    assert full.max() <= 8  # 2000/257
    assert stretched.min() == 0 and stretched.max() == 255
    auto = open_stack(tmp_path / "d.tif")  # the default: dim data are stretched
    assert auto.effective_rule is IntensityRule.PERCENTILE
    np.testing.assert_array_equal(auto.read([0], Box(0, 0, 64, 64)), stretched)


def test_auto_rule_keeps_data_that_fill_the_16bit_range(tmp_path):
    data = np.random.default_rng(0).integers(20000, 60000, size=(2, 32, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "b.tif", data, photometric="minisblack")
    auto = open_stack(tmp_path / "b.tif")
    assert auto.effective_rule is IntensityRule.FULL
    np.testing.assert_array_equal(auto.read([1], Box(0, 0, 32, 32))[0, ..., 0], np.rint(data[1] / 257).astype(np.uint8))


def test_reads_ome_zyxs_rgb_uint8_with_positions(sim_path, sim_stack):
    st = open_stack(sim_path)
    assert st.shape == (5, 192, 192, 3)
    assert st.planes_um == [-5.4, -2.7, 0.0, 2.7, 5.4]
    assert st.pixel_size_um == pytest.approx(0.243)
    np.testing.assert_array_equal(st.read([1, 4], Box(10, 20, 74, 100)), sim_stack[[1, 4], 10:74, 20:100])


def test_reads_per_plane_files(tmp_path, sim_stack):
    paths = []
    for z in range(3):
        p = tmp_path / f"p{z}.png"
        skio.imsave(p, sim_stack[z], check_contrast=False)
        paths.append(p)
    st = open_stack(paths)
    assert st.shape == (3, 192, 192, 3)
    np.testing.assert_array_equal(st.read([2], Box(0, 0, 192, 192))[0], sim_stack[2])
    grey16 = []
    for z in range(2):
        p = tmp_path / f"g{z}.tif"
        tifffile.imwrite(p, np.full((32, 32), 257 * (z + 1), np.uint16))
        grey16.append(p)
    st = open_stack(grey16, rule=IntensityRule.FULL)
    assert st.shape == (2, 32, 32, 1) and st.read([1], Box(0, 0, 32, 32)).max() == 2


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_corrupt_file_is_one_line_error(tmp_path):
    p = tmp_path / "bad.tif"
    p.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(StackError) as exc:
        open_stack(p)
    assert "bad.tif" in _one_line(exc)


def test_truncated_file_is_one_line_error(tmp_path, caplog):
    p = tmp_path / "trunc.tif"
    tifffile.imwrite(
        p, np.random.default_rng(0).integers(0, 255, (4, 64, 64), dtype=np.uint8), photometric="minisblack"
    )
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(StackError) as exc:
        open_stack(p)
    msg = _one_line(exc)
    assert "trunc.tif" in msg and ("truncated" in msg or "not a readable" in msg)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]  # the error is the only word


def test_wrong_dimensions_are_refused(tmp_path):
    p = tmp_path / "flat.tif"
    tifffile.imwrite(p, np.zeros((32, 32), np.uint8))
    with pytest.raises(StackError) as exc:
        open_stack(p)
    assert "flat.tif" in _one_line(exc) and "Z axis" in str(exc.value)
    p5 = tmp_path / "five.tif"
    tifffile.imwrite(p5, np.zeros((2, 3, 4, 16, 16), np.uint8), photometric="minisblack")
    with pytest.raises(StackError, match="five.tif"):
        open_stack(p5)
    pf = tmp_path / "float.tif"
    tifffile.imwrite(pf, np.zeros((3, 16, 16), np.float32), photometric="minisblack")
    with pytest.raises(StackError, match="float32"):
        open_stack(pf)


def test_planes_of_different_size_are_refused(tmp_path):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(a, np.zeros((32, 32), np.uint8))
    tifffile.imwrite(b, np.zeros((32, 40), np.uint8))
    with pytest.raises(StackError) as exc:
        open_stack([a, b])
    assert "b.tif" in _one_line(exc) and "does not match" in str(exc.value)
    m = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(m) as w:
        w.write(np.zeros((32, 32), np.uint8))
        w.write(np.zeros((16, 16), np.uint8))
    with pytest.raises(StackError) as exc:
        open_stack(m)
    assert "mixed.tif" in _one_line(exc) and "different sizes" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(StackError, match="no such file"):
        open_stack(tmp_path / "nope.tif")


def test_planar_rgb_stack_and_single_rgb_image(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, (4, 3, 32, 40), dtype=np.uint8)
    p = tmp_path / "planar.tif"
    tifffile.imwrite(p, data, photometric="rgb", planarconfig="separate")
    st = open_stack(p)
    assert st.shape == (4, 32, 40, 3)
    np.testing.assert_array_equal(st.read([2], Box(0, 0, 32, 40))[0], np.moveaxis(data[2], 0, -1))
    one = tmp_path / "one.tif"
    tifffile.imwrite(one, data[0], photometric="rgb", planarconfig="separate")
    with pytest.raises(StackError, match="Z axis"):
        open_stack(one)


def test_real_stack_reads_lazily_with_central_planes(real_stack_path):
    from training.planes import select_planes

    st = open_stack(real_stack_path)
    assert st.shape == (13, 1024, 1024, 1) and st.dtype == np.uint16 and st.planes_um is None
    sel = select_planes(st, planes=11, focus="middle")
    assert sel.target == tuple(range(1, 12)) and sel.input == 6 and sel.offsets_in_steps
    block = st.read([6], Box(0, 768, 64, 832))
    raw = tifffile.imread(real_stack_path, key=6)[0:64, 768:832]
    np.testing.assert_array_equal(block[0, ..., 0], np.clip(np.rint(raw / 257.0), 0, 255).astype(np.uint8))
