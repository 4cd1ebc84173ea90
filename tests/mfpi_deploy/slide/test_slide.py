from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide import Region, SlideInputError, TileSource, open_slide, pixel_rule
from mfpi_deploy.tiling import Box
from tests.mfpi_deploy.run.helpers import textured, write_tiff

SVS_DESC = "Aperio Image Library v10.0.50\r\n{w}x{h} [0,0 {w}x{h}] (256x256) JPEG/RGB Q=30|AppMag = 20|MPP = 0.4990"


def _svs(path: Path, image: np.ndarray) -> Path:
    h, w = image.shape[:2]
    opts = dict(photometric="rgb", metadata=None, compression="zlib")
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(64, 64), description=SVS_DESC.format(w=w, h=h), **opts)
        tif.write(image[::8, ::8], description="Aperio Image Library v10.0.50\r\nthumbnail", **opts)
        tif.write(image[::4, ::4], tile=(64, 64), description="Aperio Image Library v10.0.50\r\nlevel", **opts)
    return path


def _pyramidal_ome(path: Path, image: np.ndarray) -> Path:
    meta = {
        "axes": "YXS",
        "PhysicalSizeX": 250.0,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 250.0,
        "PhysicalSizeYUnit": "nm",
    }
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(image, tile=(64, 64), subifds=1, metadata=meta, photometric="rgb", compression="zlib")
        tif.write(image[::2, ::2], tile=(64, 64), subfiletype=1, photometric="rgb", compression="zlib")
    return path


@pytest.mark.parametrize("kind", ["tiled", "stripped", "planar", "bigtiff", "ome-pyramid", "svs", "imagej"])
def test_formats_read_lazily_with_pixel_size(tmp_path: Path, kind: str) -> None:
    image = textured(150, 190)
    path = tmp_path / f"{kind}.tif"
    expected_size = 0.5
    if kind == "tiled":
        write_tiff(path, image, tile=(64, 64), compression="zlib")
    elif kind == "stripped":
        write_tiff(path, image, rowsperstrip=16)
    elif kind == "planar":
        write_tiff(path, np.moveaxis(image, -1, 0).copy(), planarconfig="separate", photometric="rgb", tile=(32, 32))
    elif kind == "bigtiff":
        write_tiff(path, image, bigtiff=True, tile=(32, 32), pixel_size_um=None)
        expected_size = None
    elif kind == "ome-pyramid":
        _pyramidal_ome(path, image)
        expected_size = 0.25
    elif kind == "svs":
        path = _svs(tmp_path / "a.svs", image)
        expected_size = 0.499
    else:
        tifffile.imwrite(
            path, image, imagej=True, photometric="rgb", resolution=(1 / 0.8, 1 / 0.8), metadata={"unit": "um"}
        )
        expected_size = 0.8
    with open_slide(path) as slide:
        info = slide.info
        assert (info.height, info.width, info.samples) == (150, 190, 3)
        assert info.pixel_size_um == pytest.approx(expected_size) if expected_size else info.pixel_size_um is None
        assert np.array_equal(slide.read(10, 77, 33, 150), image[10:77, 33:150])
    if kind in ("ome-pyramid", "svs"):
        factor = 2 if kind == "ome-pyramid" else 4
        with open_slide(path, level=1) as slide:
            assert slide.info.width == -(-190 // factor)
            assert slide.info.pixel_size_um == pytest.approx(expected_size * factor)
            assert np.array_equal(slide.read(0, 20, 0, 20), image[::factor, ::factor][:20, :20])
        with pytest.raises(SlideInputError, match="level 2 does not exist"):
            open_slide(path, level=2)


def test_windows_reflect_at_region_edges(tmp_path: Path) -> None:
    image = textured(40, 30)
    with open_slide(write_tiff(tmp_path / "a.tif", image, tile=(16, 16))) as slide:
        rule = pixel_rule(slide.info.dtype, slide.info.samples, 3)
        region = Region(5, 4, 20, 18)
        source = TileSource(slide, rule, region)
        crop = image[4:22, 5:25]
        padded = np.pad(crop, ((24, 40), (24, 40), (0, 0)), mode="reflect")
        got = source.read(Box(-24, -24, 18 + 40, 20 + 40))
        assert np.array_equal(got, padded)
        assert np.array_equal(source.read(Box(2, 3, 10, 12)), crop[2:10, 3:12])
        with pytest.raises(MfpiError, match="outside"):
            TileSource(slide, rule, Region(20, 0, 20, 10))


def test_pixel_rules_grey_rgba_16bit(tmp_path: Path) -> None:
    rgba = np.concatenate([textured(20, 20), np.full((20, 20, 1), 7, np.uint8)], -1)
    rule = pixel_rule(np.uint8, 4, 3)
    assert np.array_equal(rule.apply(rgba), rgba[..., :3])
    grey16 = textured(20, 20, channels=1, dtype=np.uint16)[..., None]
    rule16 = pixel_rule(np.uint16, 1, 1)
    assert np.array_equal(rule16.apply(grey16), np.rint(grey16 / 257).astype(np.uint8))
    rule12 = pixel_rule(np.uint16, 1, 1, max_value=4095)
    assert rule12.apply(np.array([[[4095]], [[5000]], [[0]]], np.uint16)).ravel().tolist() == [255, 255, 0]
    with pytest.raises(MfpiError, match="convert-channels"):
        pixel_rule(np.uint8, 1, 3)
    with pytest.raises(MfpiError, match="convert-channels"):
        pixel_rule(np.uint8, 3, 1)
    grey_to_rgb = pixel_rule(np.uint8, 1, 3, convert_channels=True).apply(np.full((2, 2, 1), 9, np.uint8))
    assert grey_to_rgb.shape == (2, 2, 3) and (grey_to_rgb == 9).all()
    luma = pixel_rule(np.uint8, 3, 1, convert_channels=True).apply(np.array([[[255, 0, 0]]], np.uint8))
    assert luma.ravel().tolist() == [76]
    with pytest.raises(MfpiError, match="unsupported pixel type float32"):
        pixel_rule(np.float32, 3, 3)


def test_max_sample_value_tag_sets_16_bit_scaling(tmp_path: Path) -> None:
    data = np.array([[0, 2048, 4095, 4000]], np.uint16)
    path = tmp_path / "g12.tif"
    tifffile.imwrite(path, data, extratags=[(281, "H", 1, 4095, True)])
    with open_slide(path) as slide:
        assert slide.info.max_value == 4095
        rule = pixel_rule(slide.info.dtype, slide.info.samples, 1, max_value=slide.info.max_value)
        assert rule.apply(slide.read(0, 1, 0, 4)).ravel().tolist() == [0, 128, 255, 249]


@pytest.mark.parametrize("case", ["missing", "text", "multi-z", "truncated", "directory"])
def test_bad_files_raise_one_line_errors(tmp_path: Path, case: str) -> None:
    path = tmp_path / "x.tif"
    if case == "text":
        path.write_text("hello, not an image\n")
    elif case == "multi-z":
        tifffile.imwrite(path, np.zeros((3, 16, 16), np.uint8), photometric="minisblack", metadata={"axes": "ZYX"})
    elif case == "truncated":
        write_tiff(path, textured(64, 64), tile=(16, 16), compression="zlib")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "directory":
        path = tmp_path
    with pytest.raises(SlideInputError) as err:
        open_slide(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_openslide_formats_need_the_extra(tmp_path: Path) -> None:
    try:
        import openslide  # noqa: F401

        pytest.skip("openslide-python is installed")
    except ImportError:
        pass
    path = tmp_path / "a.ndpi"
    path.write_bytes(b"not really a slide")
    with pytest.raises(SlideInputError, match=r"pip install 'mfpi-deploy\[openslide\]'"):
        open_slide(path)


def test_a_png_or_jpeg_handed_in_as_a_slide_is_named(tmp_path: Path) -> None:
    import imagecodecs

    image = textured(16, 16)
    for name, data, kind in (
        ("a.tif", imagecodecs.png_encode(image), "a PNG file, not a TIFF"),
        ("b.tiff", imagecodecs.jpeg8_encode(image), "a JPEG file, not a TIFF"),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SlideInputError, match=kind) as err:
            open_slide(tmp_path / name)
        assert "\n" not in str(err.value)


def test_an_extra_sample_not_marked_as_alpha_is_dropped_with_a_warning(tmp_path: Path) -> None:
    two = np.zeros((8, 8, 2), np.uint8)
    tifffile.imwrite(tmp_path / "two.tif", two, photometric="minisblack", planarconfig="contig")  # unspecified
    tifffile.imwrite(tmp_path / "rgba.tif", np.zeros((8, 8, 4), np.uint8), photometric="rgb")  # marked alpha
    with open_slide(tmp_path / "two.tif") as slide:
        assert slide.info.samples == 2
        assert [w for w in slide.warnings if "not marked as alpha" in w] != []
    with open_slide(tmp_path / "rgba.tif") as slide:
        assert slide.info.samples == 4 and not [w for w in slide.warnings if "alpha" in w]


def test_a_refused_region_is_named_as_the_option_is_written() -> None:
    with pytest.raises(MfpiError, match=r"^region x=0 y=0 w=0 h=0 is empty or starts before the image$"):
        Region.parse("0,0,0,0").check(100, 100)  # it said "region Region(x=0, y=0, width=0, height=0) ..."
    with pytest.raises(MfpiError, match=r"^region x=90 y=0 w=20 h=5 reaches outside the 100x100 image$"):
        Region.parse("90,0,20,5").check(100, 100)
