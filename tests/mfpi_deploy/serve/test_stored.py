"""A finished mfpi-run output served from its stored pyramid, with no engine: the same planes as
the live view of the same slide, tile for tile and level for level (lossless outputs: exact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.run import RunOptions, run_slide
from mfpi_deploy.serve.config import ServeConfig
from mfpi_deploy.serve.render import decode
from mfpi_deploy.serve.server import open_server
from tests.mfpi_deploy.serve.conftest import client, make_server


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory, slide_path: Path, backend) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("outputs")
    quiet = RunOptions(progress=False, log=lambda _: None)
    zarr_out = folder / "cells_zarr.ome.zarr"  # zstd: lossless
    run_slide(slide_path, zarr_out, backend, quiet)
    tiff_out = folder / "cells_tiff.mfp.ome.tif"
    run_slide(slide_path, tiff_out, backend, RunOptions(progress=False, log=lambda _: None, lossless=True))
    return {"cells_zarr": zarr_out, "cells_tiff": tiff_out}


def test_served_output_and_live_view_give_identical_planes(slide_path: Path, backend, outputs) -> None:
    def no_engine():
        raise AssertionError("a finished output must be served without an engine")

    stored = open_server(list(outputs.values()), ServeConfig(), no_engine, log=lambda _: None)
    live = make_server([slide_path], backend)
    try:
        s, lv = client(stored), client(live)
        listed = {d["name"]: d for d in s.get("/slides").json()["slides"]}
        assert set(listed) == set(outputs)
        for name in outputs:
            assert listed[name]["kind"] == "output" and listed[name]["has_input"] is False
            assert listed[name]["planes_um"] == lv.get("/slides").json()["slides"][0]["planes_um"]
            assert listed[name]["z_unit"] == lv.get("/slides").json()["slides"][0]["z_unit"] == "µm"
            assert listed[name]["pixel_size_um"] == pytest.approx(0.25)
        g = live.slides["cells"].geometry
        assert stored.slides["cells_zarr"].geometry == g == stored.slides["cells_tiff"].geometry
        for level in (g.max_level, g.max_level - 1, g.max_level - 2, g.max_level - 4):  # computed first, then reduced
            rows, cols = g.grid(level)
            for plane in (0, 4, 10):
                for row in range(rows):
                    for col in range(cols):
                        want = decode(lv.get(f"/slides/cells/{plane}_files/{level}/{col}_{row}.png").content)
                        for name in outputs:
                            got = s.get(f"/slides/{name}/{plane}_files/{level}/{col}_{row}.png")
                            assert got.status_code == 200
                            assert np.array_equal(decode(got.content), want), (name, level, plane, col, row)
        assert s.get("/stats").json()["engine_tiles_computed"] == 0
        r = s.get(f"/slides/cells_zarr/input_files/{g.max_level}/0_0.png")
        assert r.status_code == 404 and "no input view" in r.text
        sharp = s.get("/slides/cells_tiff/sharpest?x=0&y=0&w=680&h=600").json()
        assert sharp == lv.get("/slides/cells/sharpest?x=0&y=0&w=680&h=600").json()
    finally:
        stored.close()
        live.close()


def test_a_file_that_is_not_an_output_is_refused_at_start(tmp_path: Path) -> None:
    fake = tmp_path / "broken.ome.zarr"
    fake.mkdir()
    with pytest.raises(MfpiError, match=r"broken.ome.zarr: not an OME-Zarr written by mfpi-run"):
        open_server([fake], ServeConfig(), lambda: None, log=lambda _: None)
    cut = tmp_path / "cut.mfp.ome.tif"
    cut.write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(MfpiError, match=r"cut.mfp.ome.tif: no image in this TIFF"):
        open_server([cut], ServeConfig(), lambda: None, log=lambda _: None)
    notstack = tmp_path / "flat.mfp.ome.tif"
    tifffile.imwrite(notstack, np.zeros((8, 8), np.uint8), ome=True)
    with pytest.raises(MfpiError, match=r"flat.mfp.ome.tif: not an OME-TIFF stack written by mfpi-run \(axes YX\)"):
        open_server([notstack], ServeConfig(), lambda: None, log=lambda _: None)
