from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from mfpi_deploy.cli.run import main
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run.options import PreviewOptions
from mfpi_deploy.run.preview import LABEL_HEIGHT, montage, panel_origins, preview_box, preview_path, shown_planes
from mfpi_deploy.slide import Region
from mfpi_deploy.tiling import Box
from tests.mfpi_deploy.run.helpers import textured, tiny_checkpoint, write_tiff

PLANES_UM = [round(2.7 * i, 1) for i in range(-5, 6)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "c3")


def _run(args: list[str], ckpt: Path) -> object:
    return CliRunner().invoke(main, [*args, "--engine", str(ckpt), "--backend", "torch", "--threads", "1", "--quiet"])


def _panels(png: Path, count: int, height: int, width: int) -> list[np.ndarray]:
    image = np.asarray(Image.open(png).convert("RGB"))
    return [image[y : y + height, x : x + width] for y, x in panel_origins(count, height, width)]


def test_preview_of_an_ome_tiff_shows_input_and_planes(tmp_path: Path, ckpt: Path) -> None:
    image = textured(40, 56)
    src = write_tiff(tmp_path / "slide.tif", image)
    result = _run([str(src), "--preview"], ckpt)
    assert result.exit_code == 0, result.output
    png = tmp_path / "slide.mfp.preview.png"
    assert f"preview: {png}" in result.stderr
    assert Image.open(png).size == (4 + 3 * (112 + 4), 4 + 2 * (LABEL_HEIGHT + 80 + 4))  # 6 panels of 2x40x56
    panels = _panels(png, 6, 80, 112)
    assert np.array_equal(panels[0], np.repeat(np.repeat(image, 2, 0), 2, 1))  # the whole input: smaller than 256
    stack = tifffile.imread(tmp_path / "slide.mfp.ome.tif")
    for panel, z in zip(panels[1:], [0, 2, 5, 8, 10]):
        assert np.array_equal(panel, stack[z]), z


def test_preview_region_of_an_ome_zarr_run_on_a_region(tmp_path: Path, ckpt: Path) -> None:
    image = textured(64, 80, channels=1)
    src = write_tiff(tmp_path / "grey.tif", image)
    out = tmp_path / "o.ome.zarr"
    png = tmp_path / "look.png"
    result = _run(
        [
            str(src),
            "-o",
            str(out),
            "--region",
            "8,4,60,50",
            "--convert-channels",
            "--preview",
            str(png),
            "--preview-region",
            "20,10,24,16",
        ],
        ckpt,
    )
    assert result.exit_code == 0, result.output
    panels = _panels(png, 6, 32, 48)
    rgb = np.repeat(image[10:26, 20:44, None], 3, axis=-1)  # grey input on an RGB engine: grey -> RGB
    assert np.array_equal(panels[0], np.repeat(np.repeat(rgb, 2, 0), 2, 1))
    level0 = zarr_stack.open_level(out, 0)  # output of the region 8,4: the preview starts 12,6 input px into it
    for panel, z in zip(panels[1:], [0, 2, 5, 8, 10]):
        assert np.array_equal(panel, np.moveaxis(level0[:, z, 12:44, 24:72], 0, -1)), z


def test_bad_preview_options_are_refused_before_the_run(tmp_path: Path, ckpt: Path) -> None:
    src = write_tiff(tmp_path / "slide.tif", textured(32, 32))
    before = set(tmp_path.iterdir())
    for args, message in (
        (["--preview-region", "30,0,10,10"], "is not inside the part run"),
        (["--preview-region", "1,2"], "--preview-region must be x,y,w,h"),
        (["--preview", "look.jpg"], "must end in .png"),
    ):
        result = _run([str(src), *args], ckpt)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and message in result.stderr
    assert set(tmp_path.iterdir()) == before


def test_preview_helpers() -> None:
    assert shown_planes(11, 5) == [0, 2, 5, 8, 10] and shown_planes(3, 5) == [0, 1, 2] and shown_planes(2, 1) == [0]
    assert preview_path(Path("a/s.mfp.ome.tif"), PreviewOptions()) == Path("a/s.mfp.preview.png")
    assert preview_path(Path("s.OME.ZARR"), PreviewOptions()) == Path("s.preview.png")
    assert preview_path(Path("s.ome.zarr"), PreviewOptions(path=Path("x.png"))) == Path("x.png")
    run = Region(100, 50, 1000, 600)
    assert preview_box(PreviewOptions(), run) == Box(172, 372, 428, 628)  # the central 256x256
    assert preview_box(PreviewOptions(region=Region(100, 60, 10, 20)), run) == Box(10, 0, 30, 10)
    with pytest.raises(MfpiError, match="not inside"):
        preview_box(PreviewOptions(region=Region(99, 60, 10, 20)), run)
    grid = montage([np.full((5, 7, 1), 9, np.uint8), np.full((5, 7, 3), 200, np.uint8)], ["a", "b"])
    assert grid.shape == (4 + LABEL_HEIGHT + 5 + 4, 4 + 2 * (7 + 4), 3)
    (y0, x0), (y1, x1) = panel_origins(2, 5, 7)
    assert (grid[y0 : y0 + 5, x0 : x0 + 7] == 9).all() and (grid[y1 : y1 + 5, x1 : x1 + 7] == 200).all()
