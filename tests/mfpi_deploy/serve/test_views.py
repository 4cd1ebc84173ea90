"""The input view reads a slide's own pyramid levels (not a recomputation from level 0), and the
server's options refuse what no server can use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.serve.config import ServeConfig, is_loopback
from mfpi_deploy.serve.mapping import reduce
from mfpi_deploy.serve.slides import is_output, slide_name
from mfpi_deploy.serve.views import InputView
from mfpi_deploy.tiling import Box
from tests.mfpi_deploy.run.helpers import textured
from tests.mfpi_deploy.serve.conftest import batch_mates, make_server


def test_input_view_uses_the_slides_own_levels(tmp_path: Path) -> None:
    base = textured(512, 512, seed=1)
    marked = np.full((256, 256, 3), 77, np.uint8)  # level 1 on purpose unlike level 0 halved
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(base, subifds=1, tile=(128, 128), photometric="rgb", metadata={"axes": "YXS"})
        tif.write(marked, subfiletype=1, tile=(128, 128), photometric="rgb")
    view = InputView(path)
    try:
        assert view.stored_downsamples == [1, 2]
        assert np.array_equal(view.region(1, Box(0, 0, 256, 256)), base[:256, :256])
        assert np.array_equal(view.region(2, Box(0, 0, 128, 128)), marked[:128, :128])  # read, not computed
        assert np.array_equal(view.region(4, Box(0, 0, 64, 64)), reduce(marked[None], 2)[0, :64, :64])
    finally:
        view.close()


def test_names_and_kinds() -> None:
    assert slide_name(Path("/a/cells.ome.tif")) == "cells"
    assert slide_name(Path("/a/cells.mfp.ome.tif")) == "cells"
    assert slide_name(Path("/a/run 1 (copy).ome.zarr")) == "run_1__copy_"
    assert slide_name(Path("/a/..hidden.svs")) == "hidden"
    assert is_output(Path("x.ome.zarr")) and is_output(Path("x.mfp.ome.tif"))
    assert not is_output(Path("x.ome.tif")) and not is_output(Path("x.svs"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": "0.0.0.0"}, "not a loopback address: pass --token"),
        ({"host": "192.168.1.5", "token": "x" * 15}, "at least 16 characters"),
        ({"port": 70000}, "--port must be 0..65535"),
        ({"cache_mb": -1}, "--cache-mb"),
        ({"tile": 8}, "tile 8"),
        ({"compute_levels": 0}, "at least the full-resolution level"),
        ({"engine_tile": 0}, "--tile must be at least 1"),
        ({"tile_batch": 0}, "--batch must be at least 1"),
    ],
)
def test_config_refusals(options: dict, message: str) -> None:
    with pytest.raises(MfpiError, match=message):
        ServeConfig(**options)


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.0.1", "example.com", ""))
    assert ServeConfig(host="0.0.0.0", token="t" * 16).token == "t" * 16


def test_coarse_input_tiles_are_read_in_bands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mfpi_deploy.serve.views as views
    from tests.mfpi_deploy.run.helpers import write_tiff

    image = textured(300, 200, seed=2)
    view = InputView(write_tiff(tmp_path / "flat.tif", image))  # one level: coarse tiles come from level 0
    monkeypatch.setattr(views, "BAND_PIXELS", 200 * 20)  # at most 20 rows of 200 px at once
    reads: list[tuple[int, int]] = []
    slide = view._levels[1]
    original = slide.read

    def counted(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        reads.append((y1 - y0, x1 - x0))
        return original(y0, y1, x0, x1)

    monkeypatch.setattr(slide, "read", counted)
    try:
        got = view.region(8, Box(0, 0, 38, 25))
        assert np.array_equal(got, reduce(image[None], 8)[0])
        assert len(reads) > 1 and all(h * w <= 200 * 20 for h, w in reads)
    finally:
        view.close()


class RecordingBackend:
    """The tiny model's backend, recording the batch shapes it is asked to run."""

    def __init__(self, inner) -> None:
        self.inner, self.kind, self.spec, self.identity = inner, inner.kind, inner.spec, inner.identity
        self.shapes: list[tuple[int, ...]] = []

    def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
        self.shapes.append(tiles.shape)
        return self.inner.run(tiles, dpm)

    def run_many(self, batches):
        for tiles in batches:
            yield self.run(tiles)

    def facts(self):
        return self.inner.facts()

    def close(self) -> None:
        pass


@pytest.mark.parametrize("warm", [True, False])
def test_the_engine_runs_one_batch_of_the_plans_shape_at_start_and_caches_nothing(
    slide_path: Path, backend, warm: bool
) -> None:
    recording = RecordingBackend(backend)
    server = make_server([slide_path], recording, warm_up=warm)
    try:
        run = server.slides["cells"].live.run
        side, channels = run.plan.tile, backend.spec.channels
        assert recording.shapes == ([(len(run.groups[0]), side, side, channels)] if warm else [])
        stats = server.stats()
        assert stats["engine_tiles_computed"] == 0 and stats["cache_entries"] == 0
    finally:
        server.close()


def test_batch_option_sets_the_plans_batch_so_a_tile_computes_only_its_own(slide_path: Path, backend) -> None:
    default, single = make_server([slide_path], backend), make_server([slide_path], backend, tile_batch=1)
    try:
        name = slide_path.stem
        assert default.slides[name].live.run.batch > 1  # the case --batch exists for: batch-mates computed too
        assert single.slides[name].live.run.batch == 1
        assert batch_mates(single, name, [3]) == {3}
    finally:
        default.close()
        single.close()
