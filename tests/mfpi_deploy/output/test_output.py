from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import OutputFormat, StackLayout, ome_tiff, zarr_stack
from mfpi_deploy.output.codecs import parse_codec
from mfpi_deploy.output.pyramid import PyramidBuilder, PyramidGrid, downsample2, level_shapes

PLANES_UM = tuple(round(2.7 * i, 4) for i in range(-5, 6))


def _stack(
    tmp_path: Path, channels: int = 3, pixel: float | None = 0.25, codec: str = "zlib", steps: bool = False
) -> tuple[Path, Path, StackLayout, np.ndarray]:
    """The same 300x520 random stack as OME-Zarr and OME-TIFF, written as a run writes them: engine
    tiles of 256 px cores fed to the pyramid builder (Zarr chunks, encoded TIFF tiles), then assembled."""
    layout = StackLayout(
        planes=11,
        channels=channels,
        height=300,
        width=520,
        chunk=256,
        pixel_size_um=pixel,
        planes_um=tuple(float(z) for z in range(-5, 6)) if steps else PLANES_UM,
        name="t",
        z_in_steps=steps,
    )
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (11, 300, 520, channels), dtype=np.uint8)
    grid = PyramidGrid(level_shapes(300, 520), 256, 256)
    zarr_path, tif_path = tmp_path / "s.ome.zarr", tmp_path / "s.ome.tif"
    zarr_stack.create_stack(zarr_path, layout, grid)
    store = ome_tiff.TiffTileStore(tmp_path / "tiles", grid, parse_codec(codec), 40.0)
    sinks = {"zarr": zarr_stack.ZarrSink(zarr_path, grid), "tif": store}
    for name, sink in sinks.items():
        builder = PyramidBuilder(grid, tmp_path / f"pyramid-{name}", sink)
        for r in range(grid.engine_rows):
            for c in range(grid.engine_cols):
                box = grid.engine_block(r, c, 0)
                builder.add_engine_tile(r, c, data[:, box.y0 : box.y1, box.x0 : box.x1])
        builder.complete()
    ome_tiff.assemble_ome_tiff(tmp_path / "tiles", grid, layout, parse_codec(codec), tif_path, None)
    return zarr_path, tif_path, layout, data


def test_format_follows_name() -> None:
    assert OutputFormat.from_path("a/b.OME.ZARR") is OutputFormat.OME_ZARR
    assert OutputFormat.from_path("b.ome.tiff") is OutputFormat.OME_TIFF
    with pytest.raises(MfpiError, match="must end in"):
        OutputFormat.from_path("b.png")


def test_ome_zarr_reads_back_with_ome_zarr_py(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path, _, layout, data = _stack(tmp_path)
    node = list(Reader(parse_url(str(path)))())[0]
    assert [d.shape for d in node.data] == [(3, 11, 300, 520), (3, 11, 150, 260), (3, 11, 75, 130)]
    assert np.array_equal(np.asarray(node.data[0]), np.moveaxis(data, -1, 0))
    level1 = np.asarray(node.data[1])
    assert np.array_equal(np.moveaxis(level1, 0, -1)[:, :10, :10], downsample2(data[:, :20, :20]))
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
    assert group["0"].chunks == (1, 1, 256, 256)
    from ome_zarr_models.v04 import Image

    Image.from_zarr(group)  # validates against the NGFF 0.4 schema


@pytest.mark.parametrize("channels", [3, 1])
def test_ome_tiff_pyramid_and_physical_sizes(tmp_path: Path, channels: int) -> None:
    _, out, layout, data = _stack(tmp_path, channels=channels)
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

    path, out, layout, data = _stack(tmp_path, channels=channels, pixel=pixel)
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


def test_plane_steps_are_written_without_a_physical_z(tmp_path: Path) -> None:
    """A model whose training stack had no z spacing gives plane steps, not micrometres: the OME-TIFF
    has no PhysicalSizeZ and its PositionZ are in OME's unit-less "reference frame", the OME-Zarr's z
    axis has no unit, both still validate, and both read back as steps."""
    from ome_types import from_xml
    from ome_zarr_models.v04 import Image

    from mfpi_deploy.output.reader import StackReader

    zarr_path, tif_path, layout, _ = _stack(tmp_path, steps=True)
    with tifffile.TiffFile(tif_path) as tif:
        pixels = from_xml(tif.ome_metadata, validate=True).images[0].pixels
    assert pixels.physical_size_z is None
    assert [p.position_z for p in pixels.planes] == list(range(-5, 6))
    assert {p.position_z_unit.value for p in pixels.planes} == {"reference frame"}
    group = zarr.open_group(str(zarr_path), mode="r")
    Image.from_zarr(group)
    z_axis = group.attrs["multiscales"][0]["axes"][1]
    assert z_axis["name"] == "z" and "unit" not in z_axis
    for path in (zarr_path, tif_path):
        with StackReader(path) as stack:
            assert stack.z_in_steps and stack.planes_um == tuple(float(z) for z in range(-5, 6))
            assert stack.layout.z_in_steps
    with StackReader(_stack(tmp_path / "um")[1]) as stack:  # micrometres stay micrometres
        assert not stack.z_in_steps and stack.planes_um == pytest.approx(PLANES_UM)


def test_zarr_sink_writes_and_syncs_blank_chunks_too(tmp_path: Path) -> None:
    """An all-zero block is stored as a chunk file (the sink syncs every chunk it wrote, and a
    resumed run must not mistake a missing chunk for a blank one)."""
    layout = StackLayout(
        planes=2, channels=3, height=300, width=520, chunk=256, pixel_size_um=None, planes_um=(0.0, 1.0)
    )
    grid = PyramidGrid(level_shapes(300, 520), 256, 256)
    path = tmp_path / "s.ome.zarr"
    zarr_stack.create_stack(path, layout, grid)
    sink = zarr_stack.ZarrSink(path, grid)
    sink.put_engine_tile(0, [(0, grid.engine_block(0, 0, 0), np.zeros((2, 256, 256, 3), np.uint8))])
    assert sorted(
        p.relative_to(path / "0").as_posix() for p in (path / "0").rglob("*") if p.is_file() and "." not in p.name
    ) == [f"{c}/{z}/0/0" for c in range(3) for z in range(2)]


def test_registering_the_jpeg_chunk_codecs_again_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    zarr_stack.register_codecs()
    with caplog.at_level("INFO"):
        zarr_stack.register_codecs()  # every stack opened registers them; imagecodecs warned once per codec (~200)
    assert [r.getMessage() for r in caplog.records] == []
    assert zarr_stack.compressor(parse_codec("jpeg:80")) is not None


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("content", ["smooth", "noise"])
def test_lossy_zarr_chunks_are_checked_like_tiff_tiles(tmp_path: Path, content: str) -> None:
    """JPEG chunks of an OME-Zarr: the checked planes of each full-resolution chunk reach the floor
    (raised up the quality ladder where the content needs it, as OME-TIFF tiles are), what zarr
    reads back is what was scored, and the scores are kept for the run's report."""
    from mfpi_deploy.output.codecs import CodecReport, checked_planes

    height, width, floor = 300, 520, 40.0
    layout = StackLayout(
        planes=11, channels=3, height=height, width=width, chunk=256, pixel_size_um=0.25, planes_um=PLANES_UM
    )
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = np.stack([128 + 60 * np.sin(yy / (9 + c)) * np.cos(xx / (13 + z)) for z in range(11) for c in range(3)])
    smooth = smooth.reshape(11, 3, height, width).transpose(0, 2, 3, 1)
    data = (smooth if content == "smooth" else rng.integers(0, 256, smooth.shape)).astype(np.uint8)
    grid = PyramidGrid(level_shapes(height, width), 256, 256)
    path, scores = tmp_path / "s.ome.zarr", tmp_path / "scores"
    codec = parse_codec("jpeg:85")
    zarr_stack.create_stack(path, layout, grid, codec)
    builder = PyramidBuilder(grid, tmp_path / "pyramid", zarr_stack.ZarrSink(path, grid, codec, floor, scores))
    for r in range(grid.engine_rows):
        for c in range(grid.engine_cols):
            box = grid.engine_block(r, c, 0)
            builder.add_engine_tile(r, c, data[:, box.y0 : box.y1, box.x0 : box.x1])
    builder.complete()
    stored = np.moveaxis(zarr_stack.open_level(path, 0)[:], 0, -1)  # (C, Z, Y, X) -> (Z, Y, X, C)
    read = zarr_stack.read_scores(scores)
    checked = [s for s in read if s.psnr_db is not None]
    chunks = grid.engine_rows * grid.engine_cols
    assert len(read) == chunks * 3 * 11 and len(checked) == chunks * 3 * len(checked_planes(11))
    for z in checked_planes(11):  # every checked chunk, read back through zarr, is what was scored
        for r in range(grid.engine_rows):
            for c in range(grid.engine_cols):
                box = grid.engine_block(r, c, 0)
                for ch in range(3):
                    got = _psnr(
                        stored[z, box.y0 : box.y1, box.x0 : box.x1, ch], data[z, box.y0 : box.y1, box.x0 : box.x1, ch]
                    )
                    assert any(abs(got - s.psnr_db) < 1e-6 for s in checked)
    report = CodecReport.of(codec, floor, read, 11)
    if content == "smooth":  # JPEG 85 keeps smooth planes well above 40 dB: nothing raised
        assert report.raised == 0 and report.min_psnr_db >= floor
    else:  # noise misses 40 dB at 85: every checked chunk climbs the ladder, and each one says how far
        assert report.raised == len(checked) and all(s.level > 85 for s in read)
        assert all(s.met_floor == (s.psnr_db >= floor) for s in checked)
    assert report.tiles == len(checked)


def test_temporaries_of_killed_chunk_writers_are_removed(tmp_path: Path) -> None:
    """Half-written chunks of a killed writer (zarr's own .partial files and the .tmp files of the
    chunks encoded here) are removed before a stack is finished; chunks and metadata stay."""
    keep = [tmp_path / "0/0/3/1/2", tmp_path / "0/.zarray", tmp_path / ".zattrs", tmp_path / "0/0/3/1/.x.tmp"]
    gone = [tmp_path / f"0/0/3/1/2.{'a' * 32}.partial", tmp_path / "0/0/3/1/.2.0badf00d.tmp"]
    for path in keep + gone:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert zarr_stack.remove_temporaries(tmp_path) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
