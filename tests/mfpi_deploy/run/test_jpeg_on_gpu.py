"""`mfpi-run --jpeg-on-gpu`: the OME-TIFF's JPEG tiles through output.gpu_jpeg (here nvImageCodec's
stand-in, which encodes on the host with the same API), refused before any tile without JPEG, an
OME-TIFF or nvImageCodec, and a resume setting (GPU bytes are not the CPU's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tifffile
from click.testing import CliRunner

from mfpi_deploy.cli.run import main
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.codecs import psnr_db
from mfpi_deploy.run import RunOptions, run_slide
from mfpi_deploy.run.state import RunState, partial_dir
from tests.mfpi_deploy.output import fake_nvimgcodec
from tests.mfpi_deploy.run.helpers import FailingBackend, textured, tiny_backend, write_tiff

QUIET = dict(progress=False, log=lambda m: None)
OPTS = dict(tile=160, batch=2, **QUIET)  # 200x232 input: 12 engine tiles in 6 batches, 128 px output tiles


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gpujpeg")
    backend = tiny_backend(root, channels=1, width=4)  # grey: every tile can reach its floor (no 4:2:0 colour)
    src = write_tiff(root / "a.tif", textured(200, 232, channels=1), tile=(64, 64), compression="zlib")
    reference = root / "ref.ome.tif"
    run_slide(src, reference, backend, RunOptions(lossless=True, **OPTS))
    return src, backend, reference


def _planes(path: Path):
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].levels[0].asarray(), tif.pages[0].compression


def test_jpeg_tiles_encoded_through_nvimgcodec_meet_the_runs_floor(tmp_path: Path, made, monkeypatch) -> None:
    nv = fake_nvimgcodec.install(monkeypatch)
    src, backend, reference = made
    out = tmp_path / "a.ome.tif"
    summary = run_slide(src, out, backend, RunOptions(jpeg_on_gpu=True, model_psnr_db=30.0, **OPTS))
    assert nv.Encoder.calls, "the run did not encode through nvImageCodec"
    got, compression = _planes(out)
    want, _ = _planes(reference)
    assert compression == tifffile.COMPRESSION.JPEG
    assert summary.codec is not None and summary.codec.below_floor == 0
    assert psnr_db(got, want) >= summary.codec.floor_db - 1.0  # unchecked planes within 1 dB, as on the CPU


def test_refused_before_any_tile_without_jpeg_tiff_or_nvimgcodec(tmp_path: Path, made, monkeypatch) -> None:
    src, backend, _ = made
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", None)  # not installed: importing it fails
    ckpt = next(Path(src).parent.glob("ckpt-c1-*"))  # the grey tiny model of `made`, on torch
    args = [str(src), "--engine", str(ckpt), "--backend", "torch", "--output", str(tmp_path / "a.ome.tif")]
    result = CliRunner().invoke(main, [*args, "--jpeg-on-gpu"])
    assert result.exit_code == 2 and "gpu-jpeg" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    fake_nvimgcodec.install(monkeypatch)
    for options, out in ((dict(lossless=True), "a.ome.tif"), ({}, "a.ome.zarr")):
        with pytest.raises(MfpiError, match="--jpeg-on-gpu encodes JPEG tiles of an OME-TIFF"):
            run_slide(src, tmp_path / out, backend, RunOptions(jpeg_on_gpu=True, **options, **OPTS))
        assert not partial_dir(tmp_path / out).exists() and not (tmp_path / out).exists()


def test_a_run_begun_on_the_gpu_resumes_only_on_the_gpu(tmp_path: Path, made, monkeypatch) -> None:
    fake_nvimgcodec.install(monkeypatch)
    src, backend, _ = made
    out = tmp_path / "a.ome.tif"
    with pytest.raises(RuntimeError, match="died"):
        failing = FailingBackend(backend, fail_at=2, exc=RuntimeError("died"))
        run_slide(src, out, failing, RunOptions(jpeg_on_gpu=True, **OPTS))
    assert RunState(partial_dir(out)).settings()["jpeg_encoder"] == "nvimgcodec"
    with pytest.raises(MfpiError, match="different JPEG encoder \\(--jpeg-on-gpu\\)"):
        run_slide(src, out, backend, RunOptions(resume=True, **OPTS))
    summary = run_slide(src, out, backend, RunOptions(resume=True, jpeg_on_gpu=True, **OPTS))
    assert summary.resumed and out.is_file()
