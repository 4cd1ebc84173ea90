"""The reader opens `mfpi-run` outputs (.ome.tif, .ome.zarr) as one lazy layer with the right scale on every axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.napari.reader import get_reader, read_stack
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run import RunOptions, run_slide
from tests.mfpi_deploy.run.helpers import textured, tiny_backend, write_tiff

pytest.importorskip("dask", reason="the OME-Zarr reader needs dask (pip install -e '.[napari]')")

PLANES = [round(2.7 * i, 4) for i in range(-5, 6)]
QUIET = dict(progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("outputs")
    backend = tiny_backend(tmp, channels=1)
    grey = write_tiff(tmp / "grey.tif", textured(160, 136, channels=1), pixel_size_um=0.5)
    rgb_backend = tiny_backend(tmp, channels=3)
    rgb = write_tiff(tmp / "rgb.tif", textured(64, 48), pixel_size_um=0.5)
    made = {
        "grey.ome.tif": (grey, backend),
        "grey.ome.zarr": (grey, backend),
        "rgb.ome.tif": (rgb, rgb_backend),
        "rgb.ome.zarr": (rgb, rgb_backend),
    }
    for name, (src, engine) in made.items():  # bit-exact TIFFs: compared with the Zarr below
        run_slide(src, tmp / name, engine, RunOptions(lossless=True, **QUIET))
    return {name: tmp / name for name in made}


@pytest.mark.parametrize("name", ["grey.ome.tif", "grey.ome.zarr", "rgb.ome.tif", "rgb.ome.zarr"])
def test_reads_both_formats_with_scale_on_every_axis(outputs: dict[str, Path], name: str) -> None:
    path = outputs[name]
    reader = get_reader(str(path))
    assert reader is read_stack
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image"
    assert kwargs["scale"] == pytest.approx((2.7, 0.25, 0.25))
    assert kwargs["translate"] == pytest.approx((-13.5, 0.0, 0.0))
    assert kwargs["metadata"]["planes_um"] == pytest.approx(PLANES)
    assert kwargs["units"] == ("micrometer",) * 3
    rgb = name.startswith("rgb")
    assert kwargs["rgb"] is rgb
    levels = data if isinstance(data, list) else [data]
    zarr_path = path.with_name(name.replace(".ome.tif", ".ome.zarr"))
    want = np.moveaxis(zarr_stack.open_level(zarr_path, 0)[:], 0, -1)  # (Z, Y, X, C)
    np.testing.assert_array_equal(np.asarray(levels[0][:]), want if rgb else want[..., 0])
    if name.startswith("grey"):  # 320x272 output: a 2-level pyramid, read as a multiscale layer
        assert len(levels) == 2 and levels[1].shape == (11, 160, 136)


def test_other_files_are_left_to_other_readers(tmp_path: Path) -> None:
    flat = write_tiff(tmp_path / "flat.ome.tif", textured(16, 16))
    assert get_reader(str(flat)) is None
    assert get_reader(str(tmp_path / "x.tif")) is None
    assert get_reader(str(tmp_path / "missing.ome.zarr")) is None
    tifffile.imwrite(tmp_path / "stack.ome.tif", np.zeros((3, 16, 16), np.uint8), metadata={"axes": "ZYX"})
    assert get_reader(str(tmp_path / "stack.ome.tif")) is read_stack
