"""GPU JPEG tile encoding (output/gpu_jpeg.py): our glue on a stand-in nvImageCodec that encodes on the
host (fake_nvimgcodec.py), the stream check on streams the CPU path writes, and, gpu-marked, the
real nvImageCodec on a GPU.

Closeness criterion: a tile decoded from its JPEG bytes must reach codecs.DEFAULT_FLOOR_DB (40 dB), the
floor the run holds every lossy tile to, against the tile it was encoded from. The test tile (smooth
texture, sigma 1 noise) reaches 45.0 dB (RGB, 4:2:0) and 47.5 dB (grey) at quality 90 on the CPU path,
which leaves 5 dB for another encoder's rounding and chroma filter.
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import StackLayout, ome_tiff
from mfpi_deploy.output.codecs import DEFAULT_FLOOR_DB, encode_tiff_tile, parse_codec, psnr_db, tiff_options
from mfpi_deploy.output.gpu_jpeg import (
    INSTALL_HINT,
    GpuJpegEncoder,
    batches,
    check_jpeg,
    encode_options,
    jpeg_layout,
    jpeg_spec,
    load_nvimgcodec,
    tile_shape,
)
from mfpi_deploy.output.pyramid import PyramidBuilder, PyramidGrid, level_shapes
from tests.mfpi_deploy.output import fake_nvimgcodec

Q90 = parse_codec("jpeg:90")
SAMPLING_OF = {3: ((2, 2), (1, 1), (1, 1)), 1: ((1, 1),)}  # (h, v) per component: YCbCr 4:2:0, grey


def _tile(channels: int, seed: int = 0, h: int = 256, w: int = 256) -> np.ndarray:
    """A smooth textured tile with sigma 1 noise (see the module docstring for its PSNR at quality 90)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tint = np.array([1.0, 0.8, 0.6][:channels])
    base = 128 + 80 * np.sin(yy / (9 + seed))[..., None] * np.cos(xx / 13)[..., None] * tint
    return np.clip(base + rng.normal(0, 1, (h, w, channels)), 0, 255).round().astype(np.uint8)


def _close(data: bytes, tile: np.ndarray) -> bool:
    """The criterion: `data` decodes to within DEFAULT_FLOOR_DB of `tile`."""
    try:
        out = imagecodecs.jpeg8_decode(data)
    except Exception:  # a stream that does not decode is not close
        return False
    out = out if out.ndim == 3 else out[..., None]
    return out.shape == tile.shape and psnr_db(out, tile) >= DEFAULT_FLOOR_DB


@pytest.fixture
def nv(monkeypatch):
    return fake_nvimgcodec.install(monkeypatch)


# ---- without nvImageCodec ---------------------------------------------------------------------


def test_missing_nvimgcodec_is_one_line_with_the_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", None)  # import fails as when not installed
    for make in (load_nvimgcodec, GpuJpegEncoder):
        with pytest.raises(MfpiError) as info:
            make()
        text = str(info.value)
        assert "\n" not in text and INSTALL_HINT in text and "nvImageCodec" in text
    assert INSTALL_HINT.startswith("pip install 'mfpi-deploy[gpu-jpeg]'")


def test_the_extra_names_an_nvimgcodec_package_with_nvjpeg() -> None:
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[3] / "setup.cfg")
    extra = cfg["options.extras_require"]["gpu-jpeg"].split()
    assert any(r.startswith("nvidia-nvimgcodec-cu") and "[nvjpeg]" in r and ">=0.7" in r for r in extra)


# ---- pure logic -------------------------------------------------------------------------------


def test_codec_maps_to_baseline_jpeg_params_at_the_level_asked() -> None:
    rgb, grey = jpeg_spec(parse_codec("jpeg:85"), 3), jpeg_spec(parse_codec("jpeg:85"), 1, level=98)
    assert (rgb.quality, rgb.sampling) == (85, ((2, 2), (1, 1), (1, 1)))
    assert (grey.quality, grey.sampling) == (98, ((1, 1),))
    assert encode_options(rgb) == {
        "quality_type": "QUALITY",
        "quality_value": 85.0,
        "chroma_subsampling": "CSS_420",
        "progressive": False,
        "optimized_huffman": False,
    }
    assert encode_options(grey)["chroma_subsampling"] == "CSS_GRAY" and encode_options(grey)["quality_value"] == 98.0


@pytest.mark.parametrize(
    ("codec", "channels", "level", "match"),
    [("zstd", 3, None, "JPEG only"), ("jpegxl", 1, None, "JPEG only"), ("jpeg", 4, None, "4 channels"),
     ("jpeg", 2, None, "2 channels"), ("jpeg", 3, 0, "1 to 100"), ("jpeg", 3, 101, "1 to 100")],
)  # fmt: skip
def test_what_gpu_jpeg_cannot_write_is_refused(codec: str, channels: int, level: int | None, match: str) -> None:
    with pytest.raises(MfpiError, match=match):
        jpeg_spec(parse_codec(codec), channels, level)


def test_batches_cover_every_tile_once_in_order() -> None:
    assert batches(11, 4) == [(0, 4), (4, 8), (8, 11)]
    assert batches(11, 11) == [(0, 11)] and batches(0, 4) == []
    with pytest.raises(ValueError):
        batches(3, 0)


def test_tile_shapes_of_host_and_device_arrays() -> None:
    tile = _tile(3, h=16, w=24)
    assert tile_shape(tile) == (16, 24, 3)
    assert tile_shape(fake_nvimgcodec.DeviceArray(tile[..., :1])) == (16, 24, 1)
    for bad, match in [
        (tile[..., 0], "uint8 tiles"),
        (tile.astype(np.float32), "uint8 tiles"),
        (tile[:, ::2], "contiguous"),
        ([[1, 2]], "CUDA or NumPy"),
    ]:
        with pytest.raises(MfpiError, match=match):
            tile_shape(bad)


# ---- the stream check ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 1])
def test_the_cpu_paths_tiles_pass_the_check(channels: int) -> None:
    """The reference: what the CPU path writes (and tifffile/Bio-Formats read) is what the check accepts."""
    tile = _tile(channels, h=96, w=128)
    data = encode_tiff_tile(Q90, tile)
    layout = jpeg_layout(data)
    assert (layout.sof, layout.precision, layout.height, layout.width) == (0xC0, 8, 96, 128)
    assert check_jpeg(data, jpeg_spec(Q90, channels), (96, 128)) == data


def _patched_sof(data: bytes, at: int, value: int) -> bytes:
    """`data` with byte `at` of its SOF0 marker set to `value` (1: the marker code; 11: the first
    component's sampling factors: FF C0, length, precision, height, width, count, id, H/V)."""
    out = bytearray(data)
    out[data.index(b"\xff\xc0") + at] = value
    return bytes(out)


def test_the_check_refuses_streams_of_another_layout() -> None:
    tile = _tile(3, h=64, w=64)
    rgb, grey = jpeg_spec(Q90, 3), jpeg_spec(Q90, 1)
    good = encode_tiff_tile(Q90, tile)
    ycc444 = imagecodecs.jpeg8_encode(tile, level=90, colorspace="RGB", outcolorspace="YCBCR", subsampling=(1, 1))
    as_rgb = imagecodecs.jpeg8_encode(tile, level=90, colorspace="RGB", outcolorspace="RGB")  # 4:4:4 RGB
    as_rgb_420 = _patched_sof(as_rgb, 11, 0x22)  # the sampling factors right, the components RGB
    cases = [
        (ycc444, rgb, (64, 64), "sampling factors"),
        (as_rgb, rgb, (64, 64), "sampling factors"),
        (as_rgb_420, rgb, (64, 64), "RGB, not YCbCr"),
        (good, grey, (64, 64), "3 components, not 1"),
        (encode_tiff_tile(Q90, np.ascontiguousarray(tile[..., :1])), rgb, (64, 64), "1 components, not 3"),
        (good, rgb, (64, 32), "64x64 px"),
        (_patched_sof(good, 1, 0xC2), rgb, (64, 64), "SOF2, not baseline"),
        (good[:-2], rgb, (64, 64), "no EOI"),
        (good[2:], rgb, (64, 64), "no SOI"),
        (imagecodecs.png_encode(tile), rgb, (64, 64), "no SOI"),
        (good[:40] + good[-2:], rgb, (64, 64), "past the end"),
    ]
    for data, spec, size, match in cases:
        with pytest.raises(MfpiError, match=match):
            check_jpeg(data, spec, size)
    assert check_jpeg(good, rgb, (64, 64)) == good


# ---- the encoder on the stand-in ------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 1])
def test_batches_of_host_and_device_tiles_encode_close_to_their_pixels(nv, channels: int) -> None:
    tiles = [_tile(channels, seed=z) for z in range(11)]
    given = [fake_nvimgcodec.DeviceArray(t) if z % 2 else t for z, t in enumerate(tiles)]
    out = GpuJpegEncoder(batch=4)(Q90, given)
    assert [c["images"] for c in nv.Encoder.calls] == [4, 4, 3]
    assert all(c["codec"] == "jpeg" for c in nv.Encoder.calls)
    assert len(out) == 11 and all(type(d) is bytes for d in out)
    assert all(_close(d, t) for d, t in zip(out, tiles))
    assert not _close(out[0], tiles[1])  # the criterion tells tiles apart: order is kept
    want = SAMPLING_OF[channels]
    assert all(jpeg_layout(d).sampling == want for d in out)


def test_the_closeness_criterion_fails_a_corrupted_stream(nv) -> None:
    tile = _tile(3)
    (data,) = GpuJpegEncoder()(Q90, [tile])
    assert _close(data, tile)
    scan = data.index(b"\xff\xda")
    corrupted = bytearray(data)
    mid = (scan + len(data)) // 2
    corrupted[mid : mid + 64] = bytes(64)  # entropy-coded data zeroed: decodes, or not, to other pixels
    assert not _close(bytes(corrupted), tile)
    assert not _close(data[: len(data) // 2], tile)


def test_a_stream_in_the_wrong_layout_is_refused_not_written(nv, tmp_path: Path) -> None:
    nv.Encoder.force_subsampling = "CSS_444"  # a library that ignores the subsampling asked for
    grid = PyramidGrid(level_shapes(200, 200), 256, 256)
    store = ome_tiff.TiffTileStore(tmp_path, grid, Q90, DEFAULT_FLOOR_DB, GpuJpegEncoder())
    with pytest.raises(MfpiError, match="GPU JPEG tile refused: sampling factors"):
        store.put_tile(0, 0, 0, np.stack([_tile(3, z, 200, 200) for z in range(3)]))
    assert not list(tmp_path.glob("*.pkt"))


def test_the_encoder_asks_for_the_gpu_backend_only_on_the_device_asked(nv) -> None:
    one, current = GpuJpegEncoder(device_id=1)._encoder, GpuJpegEncoder()._encoder
    assert (one.device_id, current.device_id) == (1, -1)  # -1: nvImageCodec's "current device" default
    assert [b.backend_kind for b in one.backends] == [nv.BackendKind.GPU_ONLY]
    with pytest.raises(ValueError, match="at least 1"):
        GpuJpegEncoder(batch=0)


def test_an_image_nvimgcodec_could_not_encode_is_an_error(nv) -> None:
    nv.Encoder.fail_image = 1
    with pytest.raises(MfpiError, match="encoded no JPEG") as info:
        GpuJpegEncoder()(Q90, [_tile(1, z, 32, 32) for z in range(3)])
    assert "\n" not in str(info.value)


def test_a_batch_of_mixed_channels_is_refused(nv) -> None:
    with pytest.raises(MfpiError, match="mixes tiles of"):
        GpuJpegEncoder()(Q90, [_tile(3, h=32, w=32), _tile(1, h=32, w=32)])
    assert nv.Encoder.calls == []


def test_an_ome_tiff_written_through_the_gpu_encoder_opens_and_decodes(nv, tmp_path: Path) -> None:
    """As a run writes it: engine tiles through the pyramid into a TiffTileStore with this encoder,
    then assembled by copying bytes; tifffile reads every plane back within the floor."""
    planes, h, w = 3, 300, 520
    layout = StackLayout(planes, 3, h, w, chunk=256, pixel_size_um=0.25, planes_um=(-2.7, 0.0, 2.7), name="g")
    data = np.stack([_tile(3, z, h, w) for z in range(planes)])
    grid = PyramidGrid(level_shapes(h, w), 256, 256)
    store = ome_tiff.TiffTileStore(tmp_path / "tiles", grid, Q90, DEFAULT_FLOOR_DB, GpuJpegEncoder())
    builder = PyramidBuilder(grid, tmp_path / "pyramid", store)
    for r in range(grid.engine_rows):
        for c in range(grid.engine_cols):
            box = grid.engine_block(r, c, 0)
            builder.add_engine_tile(r, c, data[:, box.y0 : box.y1, box.x0 : box.x1])
    builder.complete()
    tiles_encoded = sum(c["images"] for c in nv.Encoder.calls)
    tif_path = tmp_path / "g.ome.tif"
    index = ome_tiff.assemble_ome_tiff(tmp_path / "tiles", grid, layout, Q90, tif_path, None)
    assert tiles_encoded >= len(index)  # every tile of the file came from the GPU encoder (some checked twice)
    with tifffile.TiffFile(tif_path) as tif:
        series = tif.series[0]
        assert tif.pages[0].compression == tifffile.COMPRESSION.JPEG
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.YCBCR
        back = series.asarray()
        assert len(series.levels) == grid.levels
    assert back.shape == data.shape
    assert all(psnr_db(back[z], data[z]) >= DEFAULT_FLOOR_DB for z in range(planes))
    assert all(e.met_floor for e in index.values())


# ---- the real thing ---------------------------------------------------------------------------------


def _gpu_reason() -> str | None:
    try:
        importlib.import_module("nvidia.nvimgcodec")
    except ImportError as exc:
        return f"nvImageCodec not installed ({exc}; {INSTALL_HINT})"
    import torch

    return None if torch.cuda.is_available() else "no CUDA device"


@pytest.mark.gpu
@pytest.mark.parametrize("channels", [3, 1])
def test_real_nvimgcodec_encodes_device_tiles_that_tifffile_reads(channels: int) -> None:
    reason = _gpu_reason()
    if reason:
        pytest.skip(reason)
    import torch

    tiles = [_tile(channels, seed=z) for z in range(11)]
    device = [torch.from_numpy(t).cuda() for t in tiles]  # CUDA tensors: __cuda_array_interface__
    torch.cuda.synchronize()
    encoder = GpuJpegEncoder(batch=8)
    out = encoder(Q90, device)  # checked against the TIFF layout inside
    assert all(_close(d, t) for d, t in zip(out, tiles))
    host = encoder(Q90, tiles[:2])  # host arrays: copied to the device by nvImageCodec
    assert len(host) == 2 and all(_close(d, t) for d, t in zip(host, tiles))
    buf = io.BytesIO()
    tifffile.imwrite(buf, iter(out), shape=(11, 256, 256, 3) if channels == 3 else (11, 256, 256), tile=(256, 256),
                     **tiff_options(Q90, channels))  # fmt: skip
    back = tifffile.imread(io.BytesIO(buf.getvalue()))
    back = back if channels == 3 else back[..., None]
    assert all(psnr_db(back[z], tiles[z]) >= DEFAULT_FLOOR_DB for z in range(11))
