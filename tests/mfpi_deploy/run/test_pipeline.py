from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.infer import whole_image
from mfpi_deploy.output import ome_tiff, zarr_stack
from mfpi_deploy.run import RunFailed, RunInterrupted, RunOptions, run_slide
from mfpi_deploy.run.state import partial_dir
from mfpi_deploy.slide import Region
from mfpi_deploy.tiling import DEFAULT_HALO, TileProfile
from tests.mfpi_deploy.run.helpers import FailingBackend, focal_stack, textured, tiny_backend, write_tiff, write_zstack

QUIET = dict(progress=False, log=lambda m: None)
REF_PAD = 2 * DEFAULT_HALO  # reflection padding of whole-image references


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    return tiny_backend(tmp_path_factory.mktemp("ckpt"), width=4)


def _level0(path: Path) -> np.ndarray:
    return np.moveaxis(zarr_stack.open_level(path, 0)[:], 0, -1)  # (Z, Y, X, C)


def test_tiled_output_matches_whole_image_with_default_halo(tmp_path: Path, backend) -> None:
    image = textured(176, 152)
    src = write_tiff(tmp_path / "a.tif", image, tile=(64, 64), compression="zlib")
    out = tmp_path / "a.ome.zarr"
    summary = run_slide(src, out, backend, RunOptions(tile=160, **QUIET))
    assert summary.tiles == 3 * 3 and summary.halo == DEFAULT_HALO
    got = _level0(out)
    ref = whole_image(image, backend, REF_PAD)
    assert got.shape == ref.shape == (11, 352, 304, 3)
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert (diff == 0).mean() >= 0.999 and diff.max() <= 2
    # and without a halo the seams are visible: the criterion can fail
    run_slide(src, tmp_path / "h0.ome.zarr", backend, RunOptions(tile=64, halo=0, **QUIET))
    diff0 = np.abs(_level0(tmp_path / "h0.ome.zarr").astype(int) - ref.astype(int))
    assert (diff0 == 0).mean() < 0.999 or diff0.max() > 2


@pytest.mark.parametrize("shape", [(13, 21), (1, 1), (57, 130)])
def test_tiny_and_odd_sizes(tmp_path: Path, backend, shape: tuple[int, int]) -> None:
    image = textured(*shape)
    src = write_tiff(tmp_path / "a.tif", image)
    out = tmp_path / "a.ome.zarr"
    summary = run_slide(src, out, backend, RunOptions(**QUIET))
    got = _level0(out)
    assert got.shape == (11, 2 * shape[0], 2 * shape[1], 3)
    # an image inside one tile is the whole image padded by the halo: pad, run, crop
    ref = whole_image(image, backend, DEFAULT_HALO)
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert (diff == 0).mean() >= 0.999 and diff.max() <= 2
    assert summary.tiles >= 1 and 0 <= summary.halo_overhead < 1


def test_fixed_engine_profile_sets_tile_and_batch(tmp_path: Path, backend) -> None:
    from dataclasses import replace

    fixed = TileProfile(opt_tile=128, min_tile=128, max_tile=128, opt_batch=2, max_batch=2)
    original = backend.spec
    backend.spec = replace(original, profiles=(fixed,))  # as a TensorRT engine built for 128 px
    try:
        src = write_tiff(tmp_path / "a.tif", textured(40, 70))
        summary = run_slide(src, tmp_path / "a.ome.zarr", backend, RunOptions(**QUIET))
        assert (summary.tile, summary.batch, summary.tiles) == (128, 2, 2 * 3)
        assert _level0(tmp_path / "a.ome.zarr").shape == (11, 80, 140, 3)
        with pytest.raises(MfpiError, match="no tile size fits"):
            run_slide(src, tmp_path / "b.ome.zarr", backend, RunOptions(halo=64, **QUIET))
    finally:
        backend.spec = original


def test_region_equals_running_the_cropped_file(tmp_path: Path, backend) -> None:
    image = textured(120, 140)
    src = write_tiff(tmp_path / "a.tif", image)
    crop = write_tiff(tmp_path / "crop.tif", np.ascontiguousarray(image[30:90, 10:110]))
    run_slide(src, tmp_path / "r.ome.zarr", backend, RunOptions(region=Region(10, 30, 100, 60), **QUIET))
    run_slide(crop, tmp_path / "c.ome.zarr", backend, RunOptions(**QUIET))
    assert np.array_equal(_level0(tmp_path / "r.ome.zarr"), _level0(tmp_path / "c.ome.zarr"))


def test_grey_16_bit_and_rgba_inputs(tmp_path: Path) -> None:
    grey = tiny_backend(tmp_path, channels=1)
    g16 = textured(40, 48, channels=1, dtype=np.uint16)
    src = write_tiff(tmp_path / "g.tif", g16)
    run_slide(src, tmp_path / "g.ome.zarr", grey, RunOptions(**QUIET))
    expected = whole_image(np.rint(g16 / 257).astype(np.uint8)[..., None], grey, REF_PAD)
    assert np.abs(_level0(tmp_path / "g.ome.zarr").astype(int) - expected.astype(int)).max() <= 2
    rgb = tiny_backend(tmp_path, channels=3)
    rgba = np.concatenate([textured(40, 48), np.full((40, 48, 1), 255, np.uint8)], -1)
    src = write_tiff(tmp_path / "rgba.tif", rgba, extrasamples=[2])
    run_slide(src, tmp_path / "rgba.ome.zarr", rgb, RunOptions(**QUIET))
    run_slide(write_tiff(tmp_path / "rgb.tif", rgba[..., :3]), tmp_path / "rgb.ome.zarr", rgb, RunOptions(**QUIET))
    assert np.array_equal(_level0(tmp_path / "rgba.ome.zarr"), _level0(tmp_path / "rgb.ome.zarr"))
    with pytest.raises(MfpiError, match="convert-channels"):
        run_slide(src, tmp_path / "x.ome.zarr", grey, RunOptions(**QUIET))
    run_slide(src, tmp_path / "x.ome.zarr", grey, RunOptions(convert_channels=True, **QUIET))
    assert _level0(tmp_path / "x.ome.zarr").shape == (11, 80, 96, 1)


def test_ome_tiff_output_metadata_and_equality_with_zarr(tmp_path: Path, backend) -> None:
    src = write_tiff(tmp_path / "a.tif", textured(64, 72), pixel_size_um=0.5)
    run_slide(src, tmp_path / "a.ome.zarr", backend, RunOptions(**QUIET))
    run_slide(src, tmp_path / "a.ome.tif", backend, RunOptions(lossless=True, **QUIET))
    with tifffile.TiffFile(tmp_path / "a.ome.tif") as tif:
        assert tif.series[0].axes == "ZYXS"
        assert np.array_equal(tif.series[0].asarray(), _level0(tmp_path / "a.ome.zarr"))
        assert 'PhysicalSizeX="0.25"' in tif.ome_metadata and 'PhysicalSizeZ="2.7"' in tif.ome_metadata
    scale = zarr_stack.read_layout(tmp_path / "a.ome.zarr").pixel_size_um
    assert scale == pytest.approx(0.25)
    # --pixel-size overrides the file
    run_slide(src, tmp_path / "p.ome.zarr", backend, RunOptions(pixel_size_um=0.3, **QUIET))
    assert zarr_stack.read_layout(tmp_path / "p.ome.zarr").pixel_size_um == pytest.approx(0.15)


@pytest.mark.parametrize("suffix", [".ome.zarr", ".ome.tif"])
def test_crash_at_tile_k_then_resume_equals_uninterrupted(tmp_path: Path, backend, suffix: str) -> None:
    src = write_tiff(tmp_path / "a.tif", textured(150, 140), tile=(32, 32))
    opts = dict(tile=72, halo=16, batch=2, **QUIET)
    clean = tmp_path / f"clean{suffix}"
    full = run_slide(src, clean, backend, RunOptions(**opts))
    assert full.tiles == 4 * 4  # cores of 72 - 2 * 16 = 40 px
    out = tmp_path / f"out{suffix}"
    k = int(np.random.default_rng().integers(1, full.tiles // 2))  # a random batch
    crashing = FailingBackend(backend, fail_at=k, exc=RuntimeError("engine died"))
    with pytest.raises(RuntimeError, match="engine died"):
        run_slide(src, out, crashing, RunOptions(**opts))
    assert not out.exists() and partial_dir(out).is_dir()
    with pytest.raises(MfpiError, match="--resume"):
        run_slide(src, out, backend, RunOptions(**opts))
    counter = FailingBackend(backend, fail_at=-1, exc=RuntimeError())
    summary = run_slide(src, out, counter, RunOptions(resume=True, **opts))
    assert summary.resumed and summary.tiles_computed < summary.tiles
    assert counter.calls == len(range(0, full.tiles, 2)) - k  # only unfinished batches ran
    assert not partial_dir(out).exists()
    if suffix == ".ome.zarr":
        assert np.array_equal(_level0(out), _level0(clean))
        assert np.array_equal(zarr_stack.open_level(out, 1)[:], zarr_stack.open_level(clean, 1)[:])
    else:
        assert np.array_equal(tifffile.imread(out), tifffile.imread(clean))


def test_a_run_stopped_before_its_first_batch_leaves_nothing_to_resume(tmp_path: Path, backend) -> None:
    """An engine error in the first batch: the partial run holds no finished batch, so the same
    command run again starts afresh instead of asking for --resume or --overwrite."""
    src = write_tiff(tmp_path / "a.tif", textured(100, 100))
    out = tmp_path / "o.ome.tif"
    opts = dict(tile=64, halo=16, batch=1, progress=False)
    failing = FailingBackend(backend, 0, RuntimeError("engine died"))
    with pytest.raises(RuntimeError, match="engine died"):
        run_slide(src, out, failing, RunOptions(log=lambda m: None, **opts))
    assert partial_dir(out).is_dir() and not out.exists()
    logs: list[str] = []
    run_slide(src, out, backend, RunOptions(log=logs.append, **opts))
    assert out.is_file() and not partial_dir(out).exists()
    assert any("no finished batch" in m for m in logs), logs
    # Ctrl-C in the first batch: the message does not send the user to a --resume with nothing to keep
    with pytest.raises(RunInterrupted, match="^interrupted before any tile was finished; rerun the same command"):
        run_slide(src, out, FailingBackend(backend, 0, KeyboardInterrupt()), RunOptions(overwrite=True, **QUIET))


def test_ctrl_c_stops_cleanly_and_resume_refuses_other_settings(tmp_path: Path, backend) -> None:
    src = write_tiff(tmp_path / "a.tif", textured(100, 100))
    out = tmp_path / "o.ome.tif"
    with pytest.raises(RunInterrupted, match="--resume"):
        run_slide(
            src, out, FailingBackend(backend, 1, KeyboardInterrupt()), RunOptions(tile=64, halo=16, batch=1, **QUIET)
        )
    assert not out.exists()
    with pytest.raises(MfpiError, match="different.*tile; pass --overwrite to start over$"):
        run_slide(src, out, backend, RunOptions(tile=72, halo=16, batch=1, resume=True, **QUIET))
    # without --tile the run plans its own tiles; the refusal names the ones the partial run began with
    with pytest.raises(MfpiError, match="different.*tile; pass --overwrite to start over, or --tile 64 to resume it$"):
        run_slide(src, out, backend, RunOptions(halo=16, batch=1, resume=True, **QUIET))
    run_slide(src, out, backend, RunOptions(tile=64, halo=16, batch=1, resume=True, **QUIET))
    assert out.is_file()


def test_existing_output_refused_unless_overwrite(tmp_path: Path, backend) -> None:
    src = write_tiff(tmp_path / "a.tif", textured(24, 24))
    for name in ("o.ome.tif", "o.ome.zarr"):
        out = tmp_path / name
        run_slide(src, out, backend, RunOptions(**QUIET))
        with pytest.raises(MfpiError, match="--overwrite"):
            run_slide(src, out, backend, RunOptions(**QUIET))
        before = out.stat().st_mtime_ns
        run_slide(src, out, backend, RunOptions(overwrite=True, **QUIET))
        assert out.exists() and out.stat().st_mtime_ns != before
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(name)] == [name]


def test_disk_full_while_writing_leaves_no_output(tmp_path: Path, backend, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    src = write_tiff(tmp_path / "a.tif", textured(64, 64))

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ome_tiff, "write_durable", full)
    out = tmp_path / "o.ome.tif"
    with pytest.raises(RunFailed, match="no space left"):
        run_slide(src, out, backend, RunOptions(**QUIET))
    assert not out.exists()


class _PrefetchingBackend(FailingBackend):
    """Takes two batches before returning the first, as the TensorRT backend's run_many does."""

    def __init__(self, inner) -> None:
        super().__init__(inner, fail_at=-1, exc=RuntimeError())
        self.most_in_flight = 0

    def run_many(self, batches):
        pending = []
        for item in batches:
            pending.append(item)
            self.most_in_flight = max(self.most_in_flight, len(pending))
            if len(pending) == 2:
                yield self.run(pending.pop(0))
        for item in pending:
            yield self.run(item)


def test_batches_in_flight_keep_their_place(tmp_path: Path, backend) -> None:
    """The pipeline feeds run_many; outputs of a backend holding two batches land where they belong."""
    src = write_tiff(tmp_path / "a.tif", textured(200, 120))
    run_slide(src, tmp_path / "plain.ome.zarr", backend, RunOptions(tile=128, batch=1, **QUIET))
    prefetching = _PrefetchingBackend(backend)
    run_slide(src, tmp_path / "ahead.ome.zarr", prefetching, RunOptions(tile=128, batch=1, **QUIET))
    assert prefetching.most_in_flight == 2
    assert np.array_equal(_level0(tmp_path / "plain.ome.zarr"), _level0(tmp_path / "ahead.ome.zarr"))


def test_zstack_plane_is_a_resume_setting(tmp_path: Path, backend) -> None:
    src = write_zstack(tmp_path / "stack.ome.tif", focal_stack(64, 64, planes=5, sharp=3))
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(RunInterrupted):
        run_slide(
            src,
            out,
            FailingBackend(backend, 1, KeyboardInterrupt()),
            RunOptions(plane=1, tile=48, halo=8, batch=1, **QUIET),
        )
    with pytest.raises(MfpiError, match="different plane"):
        run_slide(src, out, backend, RunOptions(plane="sharpest", tile=48, halo=8, batch=1, resume=True, **QUIET))
    run_slide(src, out, backend, RunOptions(plane=1, tile=48, halo=8, batch=1, resume=True, **QUIET))
    reference = tmp_path / "ref.ome.zarr"
    run_slide(src, reference, backend, RunOptions(plane=1, tile=48, halo=8, batch=1, **QUIET))
    assert np.array_equal(_level0(out), _level0(reference))
    with pytest.raises(MfpiError, match="--plane must be"):
        RunOptions(plane=-1)


def test_library_resume_with_another_engine_is_refused(tmp_path: Path) -> None:
    """The engine's identity comes from open_backend, not from the CLI: a library caller that
    resumes with another engine is refused too."""
    from mfpi_deploy.backends.select import open_backend
    from tests.mfpi_deploy.run.helpers import tiny_checkpoint

    src = write_tiff(tmp_path / "a.tif", textured(120, 120))
    out = tmp_path / "a.ome.zarr"
    opts = dict(tile=96, halo=16, batch=1, **QUIET)
    first = tiny_checkpoint(tmp_path / "first", seed=0)
    other = tiny_checkpoint(tmp_path / "other", seed=1)
    with open_backend("torch", first, log=lambda m: None) as be:
        assert be.identity.id.startswith(str(first.resolve()))
        with pytest.raises(RuntimeError, match="died"):
            run_slide(src, out, FailingBackend(be, fail_at=1, exc=RuntimeError("died")), RunOptions(**opts))
    with open_backend("torch", other, log=lambda m: None) as be, pytest.raises(MfpiError, match="different engine"):
        run_slide(src, out, be, RunOptions(resume=True, **opts))
    with open_backend("torch", first, log=lambda m: None) as be:
        assert run_slide(src, out, be, RunOptions(resume=True, **opts)).resumed


def test_resume_on_another_device_is_refused(tmp_path: Path) -> None:
    """The same engine on a GPU does not give the CPU's floats: a run begun on the CPU does not
    resume on a GPU (the device is part of the engine a run records)."""
    from mfpi_deploy.backends.base import Backend
    from mfpi_deploy.backends.select import open_backend
    from tests.mfpi_deploy.run.helpers import tiny_checkpoint

    class OnGpu(Backend):  # the CPU engine, reporting that it computes on a GPU
        def __init__(self, inner: Backend) -> None:
            self.inner, self.kind, self.spec, self.identity = inner, inner.kind, inner.spec, inner.identity

        def run(self, tiles, dpm=None):
            return self.inner.run(tiles, dpm)

        def device_type(self) -> str:
            return "cuda"

    src = write_tiff(tmp_path / "a.tif", textured(120, 120))
    out = tmp_path / "a.ome.zarr"
    opts = dict(tile=96, halo=16, batch=1, **QUIET)
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    with open_backend("torch", ckpt, device="cpu", log=lambda m: None) as be:
        with pytest.raises(RuntimeError, match="died"):
            run_slide(src, out, FailingBackend(be, fail_at=1, exc=RuntimeError("died")), RunOptions(**opts))
        with pytest.raises(MfpiError, match="different engine"):
            run_slide(src, out, OnGpu(be), RunOptions(resume=True, **opts))
        assert run_slide(src, out, be, RunOptions(resume=True, **opts)).resumed
