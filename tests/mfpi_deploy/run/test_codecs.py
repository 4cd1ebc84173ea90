"""Each output codec through a real run: read back by tifffile, Zarr and the napari reader; lossless
codecs bit-exact, lossy tiles within their floor; the pyramid of the finished file; resume and
option checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.output.codecs import DEFAULT_FLOOR_DB, checked_planes, psnr_db
from mfpi_deploy.output.pyramid import downsample2
from mfpi_deploy.run import RunOptions, run_slide
from mfpi_deploy.run.state import partial_dir
from tests.mfpi_deploy.run.helpers import SMALL_RUN, FailingBackend, textured, tiny_backend, write_tiff

OPTS = SMALL_RUN
# A broken codec path (channels swapped, tiles misplaced, wrong colour transform) lands far below
# this; JPEG at quality 90 on 8-bit planes lands far above it.
SANE_LOSSY_DB = 30.0


def _levels_tiff(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [level.asarray() for level in tif.series[0].levels]


def _levels_zarr(path: Path) -> list[np.ndarray]:
    count = zarr_stack.level_count(path)
    return [np.moveaxis(zarr_stack.open_level(path, k)[:], 0, -1) for k in range(count)]


@pytest.mark.parametrize(
    "name,codec",
    [
        ("a.ome.tif", "zlib"),
        ("a.ome.tif", "zstd"),
        ("a.ome.tif", "none"),
        ("a.ome.tif", "jpeg:90"),
        ("a.ome.tif", "jpegxl"),
        ("a.ome.zarr", "zstd"),
        ("a.ome.zarr", "zlib"),
        ("a.ome.zarr", "jpeg:90"),
    ],
)
def test_each_codec_reads_back_in_tifffile_zarr_and_napari(tmp_path: Path, made, name: str, codec: str) -> None:
    from mfpi_deploy.napari.reader import read_stack

    src, backend, reference = made
    out = tmp_path / name
    summary = run_slide(src, out, backend, RunOptions(compression=codec, **OPTS))
    want = _levels_zarr(reference)
    got = _levels_tiff(out) if name.endswith(".tif") else _levels_zarr(out)
    assert len(got) == len(want) == 2
    [(data, _, _)] = read_stack(str(out))
    shown = [np.asarray(level[:]) for level in (data if isinstance(data, list) else [data])]
    for level, (g, w, s) in enumerate(zip(got, want, shown)):
        assert g.shape == w.shape, level
        assert np.array_equal(s, g), f"napari shows what tifffile/zarr read, level {level}"
        if codec.split(":")[0] in ("zlib", "zstd", "none"):
            assert np.array_equal(g, w), f"lossless level {level}"
        else:
            assert psnr_db(g, w) > SANE_LOSSY_DB, f"level {level}"
    assert summary.output_bytes > 0 and summary.codec is not None


def _tile_scores(got: np.ndarray, want: np.ndarray, tile: int) -> list[float]:
    """PSNR of every tile of the checked planes (first, centre, last)."""
    return [
        psnr_db(got[z, y : y + tile, x : x + tile], want[z, y : y + tile, x : x + tile])
        for z in checked_planes(got.shape[0])
        for y in range(0, got.shape[1], tile)
        for x in range(0, got.shape[2], tile)
    ]


@pytest.mark.parametrize("name", ["j.ome.tif", "j.ome.zarr"])
def test_every_full_resolution_jpeg_tile_meets_its_floor(tmp_path: Path, name: str) -> None:
    """Grey planes: the quality ladder reaches any floor up to about 50 dB, so every checked tile meets
    it (raised where quality 85 falls short), as recomputed here from the file against a lossless run;
    the other planes, encoded at their position's quality, stay within 1 dB of it (they differ
    from the checked ones only in focus). OME-TIFF tiles and OME-Zarr's JPEG chunks alike."""
    backend = tiny_backend(tmp_path, channels=1, width=4)
    src = write_tiff(tmp_path / "g.tif", textured(200, 232, channels=1), tile=(64, 64), compression="zlib")
    run_slide(src, tmp_path / "ref.ome.tif", backend, RunOptions(lossless=True, **OPTS))
    floor = 46.0
    out = tmp_path / name
    options = RunOptions(model_psnr_db=floor - 10, compression="jpeg:85", **OPTS)
    summary = run_slide(src, out, backend, options)
    report = summary.codec
    assert report is not None and report.codec == "jpeg:85" and report.floor_db == floor
    if name.endswith(".tif"):
        got, unit = _levels_tiff(out)[0], 128  # checked per TIFF tile
    else:
        got, unit = _levels_zarr(out)[0], zarr_stack.open_level(out, 0).chunks[-1]  # per chunk
    want = _levels_tiff(tmp_path / "ref.ome.tif")[0]
    got = got.reshape(want.shape)  # Zarr keeps the grey channel axis, tifffile drops it
    scores = _tile_scores(got, want, unit)
    assert len(scores) == report.tiles
    assert min(scores) >= floor and min(scores) == pytest.approx(report.min_psnr_db)
    assert report.below_floor == 0 and report.raised > 0  # q85 alone does not reach 46 dB here
    assert psnr_db(got, want) >= floor - 1.0


def test_a_resumed_lossy_zarr_reports_the_chunks_of_both_runs(tmp_path: Path, made) -> None:
    """The scores of checked Zarr chunks are kept with the partial run: after a crash and --resume
    the report counts every chunk, as one uninterrupted run does, and says the same."""
    src, backend, _ = made
    options = dict(compression="jpeg:85", **OPTS)
    whole = run_slide(src, tmp_path / "whole.ome.zarr", backend, RunOptions(**options)).codec
    out = tmp_path / "a.ome.zarr"
    with pytest.raises(RuntimeError, match="died"):
        run_slide(src, out, FailingBackend(backend, fail_at=2, exc=RuntimeError("died")), RunOptions(**options))
    resumed = run_slide(src, out, backend, RunOptions(resume=True, **options))
    assert resumed.resumed and whole is not None and whole.tiles > 0
    assert resumed.codec == whole
    assert np.array_equal(_levels_zarr(out)[0], _levels_zarr(tmp_path / "whole.ome.zarr")[0])


def test_colour_detail_jpeg_cannot_keep_is_reported(tmp_path: Path, made) -> None:
    """Independent fine patterns per colour channel: JPEG's 4:2:0 colour subsampling caps every tile
    below the floor even at quality 100; the run finishes, counts them and says what to do."""
    src, backend, reference = made
    lines: list[str] = []
    options = RunOptions(**{**OPTS, "log": lines.append})
    summary = run_slide(src, tmp_path / "a.ome.tif", backend, options)
    report = summary.codec
    assert report is not None and report.below_floor > 0
    scores = _tile_scores(_levels_tiff(tmp_path / "a.ome.tif")[0], _levels_zarr(reference)[0], 128)
    assert sum(score < report.floor_db for score in scores) == report.below_floor
    assert any(line.startswith("warning:") and "--lossless" in line for line in lines)


def test_the_pyramid_of_the_finished_file_is_the_2x2_mean_of_the_level_below(tmp_path: Path, made) -> None:
    src, backend, _ = made
    out = tmp_path / "a.ome.tif"
    run_slide(src, out, backend, RunOptions(lossless=True, **OPTS))
    levels = _levels_tiff(out)
    assert np.array_equal(levels[1], downsample2(levels[0]))


def test_resume_with_another_codec_is_refused(tmp_path: Path, made) -> None:
    src, backend, _ = made
    out = tmp_path / "a.ome.tif"
    with pytest.raises(RuntimeError, match="died"):
        run_slide(src, out, FailingBackend(backend, fail_at=2, exc=RuntimeError("died")), RunOptions(**OPTS))
    assert partial_dir(out).is_dir()
    # named as the user knows them: the option, and the floor it set (not the record's floor_db)
    with pytest.raises(MfpiError, match=r"different compression, fidelity floor \(the model's PSNR \+ 10 dB\);"):
        run_slide(src, out, backend, RunOptions(resume=True, compression="zstd", **OPTS))
    summary = run_slide(src, out, backend, RunOptions(resume=True, **OPTS))
    assert summary.resumed and out.is_file()


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(compression="webp"), "unknown compression"),
        (dict(compression="jpeg:101"), "1 to 100"),
        (dict(compression="jpeg", lossless=True), "--lossless contradicts"),
    ],
)
def test_bad_codec_options_are_refused_before_anything_is_written(
    tmp_path: Path, made, options: dict, match: str
) -> None:
    src, backend, _ = made
    with pytest.raises(MfpiError, match=match):
        run_slide(src, tmp_path / "a.ome.tif", backend, RunOptions(**options, **OPTS))
    assert list(tmp_path.iterdir()) == []


def test_jpegxl_is_refused_for_zarr(tmp_path: Path, made) -> None:
    src, backend, _ = made
    with pytest.raises(MfpiError, match="OME-TIFF only"):
        run_slide(src, tmp_path / "a.ome.zarr", backend, RunOptions(compression="jpegxl", **OPTS))
    assert not (tmp_path / "a.ome.zarr").exists()


def test_default_floor_without_a_model_psnr(tmp_path: Path, made) -> None:
    src, backend, _ = made
    summary = run_slide(src, tmp_path / "a.ome.tif", backend, RunOptions(**OPTS))
    assert summary.codec is not None and summary.codec.floor_db == DEFAULT_FLOOR_DB
