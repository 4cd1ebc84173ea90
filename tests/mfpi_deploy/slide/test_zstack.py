from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide import SlideInputError, open_slide
from mfpi_deploy.slide.zstack import SHARPEST, parse_plane
from tests.mfpi_deploy.run.helpers import focal_stack, textured, write_tiff, write_zstack


@pytest.mark.parametrize("name,channels", [("stack.ome.tif", 3), ("stack.tif", 1)])
def test_one_plane_of_a_zstack(tmp_path: Path, name: str, channels: int) -> None:
    stack = focal_stack(48, 40, planes=5, sharp=3, channels=channels)
    path = write_zstack(tmp_path / name, stack)
    with open_slide(path, plane=2) as slide:
        assert (slide.info.plane, slide.info.planes, slide.info.height, slide.info.width) == (2, 5, 48, 40)
        assert slide.info.pixel_size_um == pytest.approx(0.5)
        got = slide.read(5, 30, 3, 40)
        assert np.array_equal(got, stack[2, 5:30, 3:40].reshape(got.shape))
    with open_slide(path, plane=SHARPEST) as slide:
        assert slide.info.plane == 3
        assert np.array_equal(slide.read(0, 48, 0, 40), stack[3].reshape(48, 40, channels))


def test_zstack_without_a_plane_or_out_of_range_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_zstack(tmp_path / "stack.ome.tif", focal_stack(32, 32, planes=5))
    with pytest.raises(SlideInputError) as err:
        open_slide(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "--plane" in message and "5 planes" in message and "\n" not in message
    with pytest.raises(SlideInputError, match=r"plane 9 does not exist \(the Z-stack has 5 planes, 0\.\.4\)"):
        open_slide(path, plane=9)


@pytest.mark.parametrize("metadata,axes", [({}, "QYX"), (None, "IYX")])  # a tifffile "shaped" file; plain pages
@pytest.mark.parametrize("channels", [1, 3])
def test_plain_multipage_tiff_is_a_zstack_when_a_plane_is_asked_for(
    tmp_path: Path, metadata: dict | None, axes: str, channels: int
) -> None:
    import tifffile

    stack = focal_stack(40, 48, planes=5, sharp=1, channels=channels)
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, stack if channels == 3 else stack.reshape(5, 40, 48), metadata=metadata)
    assert tifffile.TiffFile(path).series[0].axes == axes + ("S" if channels == 3 else "")
    with pytest.raises(SlideInputError) as err:  # no plane asked for: the refusal says how to run it
        open_slide(path)
    assert "5 pages with no axis names" in str(err.value) and "--plane" in str(err.value)
    with open_slide(path, plane=SHARPEST) as slide:
        assert (slide.info.plane, slide.info.planes) == (1, 5)
        assert any(f"axis {axes[0]}) are taken as Z planes" in w for w in slide.warnings)  # and says so
        assert np.array_equal(slide.read(0, 40, 0, 48), stack[1].reshape(40, 48, channels))
    with open_slide(path, plane=4) as slide:
        assert np.array_equal(slide.read(3, 20, 5, 30), stack[4, 3:20, 5:30].reshape(17, 25, channels))


def test_plane_on_a_2d_image(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "flat.tif", textured(32, 32))
    for choice in (None, 0, SHARPEST):
        with open_slide(path, plane=choice) as slide:
            assert (slide.info.plane, slide.info.planes) == (None, 1)
    with pytest.raises(SlideInputError, match=r"plane 1 does not exist \(a 2D image, plane 0 only\)"):
        open_slide(path, plane=1)


def test_sharpest_of_a_zstack_too_small_to_measure_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_zstack(tmp_path / "tiny.ome.tif", focal_stack(2, 6, planes=4, sharp=1))
    with pytest.raises(SlideInputError, match=r"--plane sharpest: a 2x6 px region is too small.*--plane N \(0\.\.3\)"):
        open_slide(path, plane=SHARPEST)
    with open_slide(path, plane=1) as slide:
        assert slide.info.plane == 1


def test_parse_plane() -> None:
    assert parse_plane("sharpest") == SHARPEST and parse_plane(" Sharpest ") == SHARPEST
    assert parse_plane("2") == 2
    for bad in ("-1", "middle", "2.5"):
        with pytest.raises(MfpiError, match="--plane must be a plane number"):
            parse_plane(bad)
