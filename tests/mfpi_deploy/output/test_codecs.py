from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.codecs import (
    DEFAULT_FLOOR_DB,
    DEFAULT_LEVEL,
    NAMES,
    Codec,
    CodecReport,
    decode_lossy,
    encode_checked,
    encode_tiff_tile,
    floor_db,
    parse_codec,
    psnr_db,
    tiff_options,
)


def _image(channels: int, seed: int = 0) -> np.ndarray:
    """Three planes, smooth with some detail: what compresses like microscope planes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:520].astype(np.float32)
    base = 128 + 80 * np.sin(yy / 9)[..., None] * np.cos(xx / 13)[..., None] * np.ones(channels)
    img = base[None] + rng.normal(0, 6, (3, 300, 520, channels))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _write_encoded(img: np.ndarray, codec: Codec, tile: int = 256) -> bytes:
    """A TIFF written from pre-encoded tiles (as the run assembles it)."""
    channels = img.shape[-1]

    def tiles():
        for z in range(img.shape[0]):
            for y in range(0, img.shape[1], tile):
                for x in range(0, img.shape[2], tile):
                    t = np.zeros((tile, tile, channels), np.uint8)
                    block = img[z, y : y + tile, x : x + tile]
                    t[: block.shape[0], : block.shape[1]] = block
                    yield encode_tiff_tile(codec, t)

    shape = img.shape if channels == 3 else img.shape[:-1]
    buf = io.BytesIO()
    tifffile.imwrite(buf, tiles(), shape=shape, tile=(tile, tile), **tiff_options(codec, channels))
    return buf.getvalue()


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", NAMES)
def test_pre_encoded_tiles_read_back_through_tifffile(name: str, channels: int) -> None:
    img = _image(channels)
    codec = parse_codec(name)
    back = tifffile.imread(io.BytesIO(_write_encoded(img, codec)))
    want = img if channels == 3 else img[..., 0]
    assert back.shape == want.shape
    if codec.lossless:
        assert np.array_equal(back, want)
    else:  # the file's tags say how to read the tiles: tifffile gets what the codec itself decodes
        # (the bottom-right tile: 44 rows of image, the rest padding)
        tile = np.zeros((256, 256, channels), np.uint8)
        tile[:44] = img[1, 256:300, 256:512]
        direct = decode_lossy(codec, encode_tiff_tile(codec, tile), channels)[:44]
        got = back[1, 256:300, 256:512]
        assert np.array_equal(got if channels == 3 else got[..., None], direct)


def test_lossless_bytes_equal_tifffiles_own_encoding() -> None:
    """zlib with the predictor: the staged tile bytes are those tifffile writes itself."""
    img = _image(3)
    ours = _write_encoded(img, parse_codec("zlib"))
    buf = io.BytesIO()
    options = tiff_options(parse_codec("zlib"), 3)
    tifffile.imwrite(buf, img, tile=(256, 256), compressionargs={"level": 3}, **options)
    assert ours == buf.getvalue()


def test_parse_codec_levels_and_refusals() -> None:
    assert parse_codec("jpeg") == Codec("jpeg", DEFAULT_LEVEL["jpeg"])
    assert parse_codec("JPEG:75") == Codec("jpeg", 75)
    assert parse_codec("zstd:9").label == "zstd:9"
    assert parse_codec("none") == Codec("none")
    for bad, match in (
        ("webp", "unknown compression"),
        ("jpeg:0", "1 to 100"),
        ("zlib:10", "1 to 9"),
        ("jpeg:hi", "whole number"),
        ("none:3", "no level"),
        ("jpeg:", r"names no level after ':' \(e.g. jpeg:85\)"),
        ("none:", "names no level after ':'$"),
    ):
        with pytest.raises(MfpiError, match=match):
            parse_codec(bad)


def test_floor_is_the_model_psnr_plus_the_margin() -> None:
    assert floor_db(None) == DEFAULT_FLOOR_DB
    assert floor_db(27.0) == DEFAULT_FLOOR_DB  # never below the default
    assert floor_db(39.5) == pytest.approx(49.5)
    # the margin's promise: codec MSE a tenth of the model's costs at most 0.41 dB against truth
    model_mse = 255**2 / 10 ** (39.5 / 10)
    assert 10 * math.log10(255**2 / (model_mse * 1.1)) == pytest.approx(39.5 - 0.414, abs=1e-3)


def test_a_tile_below_the_floor_is_raised_up_the_ladder() -> None:
    rng = np.random.default_rng(3)
    tile = rng.integers(0, 256, (256, 256, 1), dtype=np.uint8)  # grey noise: JPEG q90 loses much of it
    codec = parse_codec("jpeg:90")
    first = encode_checked(codec, tile, (256, 256), 0.0).psnr_db
    assert first is not None
    floor = first + 3.0  # out of reach at q90, within reach higher up
    enc = encode_checked(codec, tile, (256, 256), floor)
    assert enc.level is not None and enc.level > 90
    assert enc.psnr_db is not None and enc.psnr_db >= floor and enc.met_floor
    impossible = encode_checked(codec, tile, (256, 256), 99.0)
    assert impossible.level == 100 and not impossible.met_floor


def test_the_check_scores_only_the_real_pixels_of_an_edge_tile() -> None:
    tile = np.zeros((256, 256, 1), np.uint8)
    tile[:40, :40] = 120  # a flat 40x40 corner; the padding is black
    enc = encode_checked(parse_codec("jpeg"), tile, (40, 40), DEFAULT_FLOOR_DB)
    assert enc.level == DEFAULT_LEVEL["jpeg"] and enc.psnr_db is not None and enc.psnr_db > DEFAULT_FLOOR_DB


def test_codec_report_counts_raised_and_failed_tiles() -> None:
    codec = parse_codec("jpeg:90")
    entries = [
        SimpleNamespace(level=90, psnr_db=45.0, met_floor=True),
        SimpleNamespace(level=95, psnr_db=41.0, met_floor=True),
        SimpleNamespace(level=100, psnr_db=38.0, met_floor=False),
    ]
    report = CodecReport.of(codec, 40.0, entries)
    assert (report.tiles, report.raised, report.below_floor, report.min_psnr_db) == (3, 2, 1, 38.0)
    assert "2 of 3 raised to a higher quality (up to 100), 1 below the floor" in report.line()
    assert "up to" not in CodecReport.of(codec, 40.0, entries[:1]).line()  # none raised: no quality to name
    assert CodecReport.of(parse_codec("zlib"), 40.0, entries).line() == "zlib:3 (lossless)"
    # OME-Zarr's JPEG chunks are encoded by zarr, unchecked: said so, not "lowest inf dB, 0 of 0 raised"
    assert CodecReport.of(codec, 40.0, []).line() == "jpeg:90 (lossy; no tile checked against the lossless planes)"


def test_psnr_is_the_exact_mean_squared_error_of_uint8_planes() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)  # differences of both signs, up to 255
    for x, y in ((a, b), (a[5:60, 7:80], b[5:60, 7:80]), (a[..., 0], b[..., 0])):  # views, 2-D
        mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)
        assert psnr_db(x, y) == pytest.approx(10 * math.log10(255.0**2 / mse), rel=1e-12)
        assert psnr_db(x, y) == psnr_db(y, x)
    assert psnr_db(a, a) == math.inf
    extreme = np.zeros((4, 4), np.uint8)
    assert psnr_db(extreme, extreme + 255) == pytest.approx(0.0)  # every error 255: no overflow
    with pytest.raises(ValueError, match="different shapes"):
        psnr_db(a, b[:-1])
