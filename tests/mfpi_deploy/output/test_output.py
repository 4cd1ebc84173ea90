from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import OutputFormat, StackLayout, ome_tiff, zarr_stack
from mfpi_deploy.tiling import Box

PLANES_UM = tuple(round(2.7 * i, 4) for i in range(-5, 6))


def _stack(tmp_path: Path, channels: int = 3, pixel: float | None = 0.25) -> tuple[Path, StackLayout, np.ndarray]:
    layout = StackLayout(
        planes=11,
        channels=channels,
        height=300,
        width=520,
        chunk=128,
        pixel_size_um=pixel,
        planes_um=PLANES_UM,
        name="t",
    )
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (11, 300, 520, channels), dtype=np.uint8)
    path = tmp_path / "s.ome.zarr"
    arr = zarr_stack.create_stack(path, layout)
    for y in range(0, 300, 128):
        for x in range(0, 520, 128):
            box = Box(y, x, min(y + 128, 300), min(x + 128, 520))
            zarr_stack.write_core(arr, box, data[:, box.y0 : box.y1, box.x0 : box.x1])
    assert zarr_stack.build_pyramid(path, layout) == 3  # 520 -> 260 -> 130
    return path, layout, data


def test_format_follows_name() -> None:
    assert OutputFormat.from_path("a/b.OME.ZARR") is OutputFormat.OME_ZARR
    assert OutputFormat.from_path("b.ome.tiff") is OutputFormat.OME_TIFF
    with pytest.raises(MfpiError, match="must end in"):
        OutputFormat.from_path("b.png")


def test_downsample2_rounds_and_handles_odd_edges() -> None:
    block = np.array([[[[0, 1, 9], [2, 2, 9]]]], np.uint8)  # (1, 1, 2, 3)
    assert zarr_stack.downsample2(block).tolist() == [[[[1, 9]]]]


def test_ome_zarr_reads_back_with_ome_zarr_py(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path, layout, data = _stack(tmp_path)
    node = list(Reader(parse_url(str(path)))())[0]
    assert [d.shape for d in node.data] == [(3, 11, 300, 520), (3, 11, 150, 260), (3, 11, 75, 130)]
    assert np.array_equal(np.asarray(node.data[0]), np.moveaxis(data, -1, 0))
    level1 = np.asarray(node.data[1])
    assert np.array_equal(level1[:, :, :10, :10], zarr_stack.downsample2(np.moveaxis(data, -1, 0)[:, :, :20, :20]))
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [
        [1.0, pytest.approx(2.7), 0.25, 0.25],
        [1.0, pytest.approx(2.7), 0.5, 0.5],
        [1.0, pytest.approx(2.7), 1.0, 1.0],
    ]
    assert node.metadata["coordinateTransformations"][0][1]["translation"][1] == pytest.approx(-13.5)
    assert node.metadata["channel_names"] == ["R", "G", "B"]
    group = zarr.open_group(str(path), mode="r")
    assert group["0"].chunks == (1, 1, 128, 128)
    from ome_zarr_models.v04 import Image

    Image.from_zarr(group)  # validates against the NGFF 0.4 schema


@pytest.mark.parametrize("channels", [3, 1])
def test_ome_tiff_pyramid_and_physical_sizes(tmp_path: Path, channels: int) -> None:
    path, layout, data = _stack(tmp_path, channels=channels)
    out = tmp_path / "s.ome.tif"
    ome_tiff.write_ome_tiff(path, out)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff and tif.is_ome
        series = tif.series[0]
        assert series.axes == ("ZYXS" if channels == 3 else "ZYX")
        assert len(series.levels) == 3
        full = series.asarray()
        assert np.array_equal(full, data if channels == 3 else data[..., 0])
        page = tif.pages[0]
        assert page.is_tiled and page.compression == 8 and page.tilewidth == page.tilelength == 256
        assert len(page.subifds) == 2
        assert series.levels[1].shape[1:3] == (150, 260)
        pixels = next(el for el in ET.fromstring(tif.ome_metadata).iter() if el.tag.endswith("Pixels"))
        assert float(pixels.get("PhysicalSizeX")) == pytest.approx(0.25)
        assert float(pixels.get("PhysicalSizeZ")) == pytest.approx(2.7)
        planes = [el for el in pixels if el.tag.endswith("Plane")]
        assert [float(p.get("PositionZ")) for p in planes] == pytest.approx(list(PLANES_UM))
        xres = page.tags["XResolution"].value
        assert page.tags["ResolutionUnit"].value == 3 and 1e4 * xres[1] / xres[0] == pytest.approx(0.25)


@pytest.mark.parametrize("channels,pixel", [(3, 0.25), (1, 0.25), (3, None)])
def test_ome_tiff_validates_in_the_bio_formats_layout(tmp_path: Path, channels: int, pixel: float | None) -> None:
    """What QuPath and Fiji (Bio-Formats) need: schema-valid OME-XML with SizeZ, physical sizes with
    units and PositionZ; one IFD per plane, the pyramid in its SubIFDs, 256 or 512 px tiles."""
    from ome_types import from_xml

    path, layout, data = _stack(tmp_path, channels=channels, pixel=pixel)
    out = tmp_path / "s.ome.tif"
    ome_tiff.write_ome_tiff(path, out)
    with tifffile.TiffFile(out) as tif:
        ome = from_xml(tif.ome_metadata, validate=True)  # raises on anything the OME schema refuses
        assert len(tif.pages) == 11  # top-level IFDs: one per plane, nothing else
        for z, page in enumerate(tif.pages):
            assert len(page.subifds) == 2 and page.tilewidth == page.tilelength == 256
            assert np.array_equal(page.asarray(), data[z] if channels == 3 else data[z, ..., 0])
        tif.filehandle.seek(tif.pages[3].subifds[0])
        sub = tifffile.TiffPage(tif, index=0)  # plane 3, level 1
        assert sub.shape[:2] == (150, 260) and sub.tilewidth == 256 and sub.subfiletype == 1
        assert np.array_equal(sub.asarray(), np.moveaxis(zarr_stack.open_level(path, 1)[:, 3], 0, -1).squeeze())
    pixels = ome.images[0].pixels
    assert (pixels.size_z, pixels.size_c, pixels.size_t, pixels.size_y, pixels.size_x) == (11, channels, 1, 300, 520)
    assert pixels.physical_size_z == pytest.approx(2.7) and pixels.physical_size_z_unit.value == "µm"
    if pixel:
        assert pixels.physical_size_x == pixels.physical_size_y == pytest.approx(0.25)
        assert pixels.physical_size_x_unit.value == pixels.physical_size_y_unit.value == "µm"
    else:
        assert pixels.physical_size_x is None
    assert [p.the_z for p in pixels.planes] == list(range(11))
    assert [p.position_z for p in pixels.planes] == pytest.approx(list(PLANES_UM))
    assert {p.position_z_unit.value for p in pixels.planes} == {"µm"}
    assert pixels.tiff_data_blocks[0].plane_count == 11


def test_ome_tiff_tiles_are_256_or_512() -> None:
    def layout(chunk: int) -> StackLayout:
        return StackLayout(
            planes=11, channels=3, height=9, width=9, chunk=chunk, pixel_size_um=None, planes_um=PLANES_UM
        )

    sizes = [ome_tiff.tiff_tile_size(layout(c)) for c in (64, 320, 511, 512, 832, 2048)]
    assert sizes == [256, 256, 256, 512, 512, 512]


def test_ome_tiff_tiles_not_aligned_with_the_zarr_chunks(tmp_path: Path) -> None:
    path, _, data = _stack(tmp_path, channels=1)  # chunks 128 (level 0) and 256 (levels 1, 2)
    out = tmp_path / "s.ome.tif"
    ome_tiff.write_ome_tiff(path, out, tile=80)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].tilewidth == 80
        assert np.array_equal(tif.series[0].asarray(), data[..., 0])
        assert np.array_equal(tif.series[0].levels[1].asarray(), zarr_stack.open_level(path, 1)[0])


@pytest.mark.parametrize("channels", [3, 1])
def test_stack_reader_reads_windows_of_both_formats(tmp_path: Path, channels: int) -> None:
    from mfpi_deploy.output.reader import StackReader

    path, _, data = _stack(tmp_path, channels=channels)
    out = tmp_path / "s.ome.tif"
    ome_tiff.write_ome_tiff(path, out)
    box = Box(100, 130, 290, 400)  # across chunk and tile borders
    for stack_path in (path, out):
        with StackReader(stack_path) as stack:
            assert (stack.planes, stack.height, stack.width) == (11, 300, 520)
            assert np.array_equal(stack.read(7, box), data[7, 100:290, 130:400])
