"""The one opener of finished outputs: both formats as written by this package's own writers, read
window by window at full resolution and at a lower pyramid level, and one-line refusals of
missing, damaged and foreign files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output import StackLayout
from mfpi_deploy.output.pyramid import downsample2
from mfpi_deploy.output.reader import StackReader, StackReadError
from mfpi_deploy.tiling import Box
from tests.mfpi_deploy.output.test_output import PLANES_UM, _stack

PROC_FDS = Path("/proc/self/fd")  # Linux: which files this process holds open


def _open_fds(path: Path) -> int:
    """File descriptors of this process open on `path`."""
    return sum(1 for fd in PROC_FDS.iterdir() if os.path.realpath(fd) == str(path.resolve()))


def _stored_shape(path: Path, channels: int, height: int, width: int) -> tuple[int, ...]:
    """A level as its format stores it: (c, z, y, x) in an OME-Zarr, (z, y, x[, s]) in an OME-TIFF."""
    if path.name.endswith(".ome.zarr"):
        return (channels, 11, height, width)
    return (11, height, width) + ((channels,) if channels > 1 else ())


@pytest.mark.parametrize("channels", [3, 1])
def test_stack_reader_reads_windows_of_both_formats(tmp_path: Path, channels: int) -> None:
    path, out, _, data = _stack(tmp_path, channels=channels)
    box = Box(100, 130, 290, 400)  # across chunk and tile borders
    for stack_path in (path, out):
        with StackReader(stack_path) as stack:
            assert (stack.planes, stack.height, stack.width) == (11, 300, 520)
            assert np.array_equal(stack.read(7, box), data[7, 100:290, 130:400])


@pytest.mark.parametrize("channels", [3, 1])
def test_both_formats_open_with_their_sizes_and_every_level(tmp_path: Path, channels: int) -> None:
    zarr_path, tif_path, _, data = _stack(tmp_path, channels=channels)
    level1 = downsample2(data)  # what the pyramid builder stores one level down (150 x 260)
    low = Box(40, 70, 150, 260)  # level-1 pixels, up to its bottom-right edge
    for path in (zarr_path, tif_path):
        with StackReader(path) as stack:
            assert (stack.planes, stack.channels, stack.height, stack.width, stack.levels) == (
                11,
                channels,
                300,
                520,
                3,
            )
            assert stack.planes_um == PLANES_UM and stack.pixel_size_um == pytest.approx(0.25)
            assert stack.layout == StackLayout(11, channels, 300, 520, 0, stack.pixel_size_um, PLANES_UM)
            assert stack.level_array(1).shape == _stored_shape(path, channels, 150, 260)
            assert stack.level_array(2).shape == _stored_shape(path, channels, 75, 130)
            assert np.array_equal(stack.read(0, Box(0, 0, 300, 520)), data[0])
            assert np.array_equal(stack.read(4, low, level=1), level1[4, 40:150, 70:260])
            planes = stack.read_planes(low, level=1)
            assert planes.shape == (11, 110, 190, channels)
            assert np.array_equal(planes, level1[:, 40:150, 70:260])
        if path == tif_path and PROC_FDS.is_dir():
            assert _open_fds(path) == 0  # closed with its tile stores


def test_missing_damaged_and_foreign_files_are_refused_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zarr_path, tif_path, _, _ = _stack(tmp_path / "made", channels=1)
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(tif_path.read_bytes()[: tif_path.stat().st_size // 2])  # its OME-XML (kept last) is gone
    junk = tmp_path / "junk.ome.tif"
    junk.write_bytes(b"this is not a TIFF at all")
    empty = tmp_path / "empty.ome.tif"
    empty.write_bytes(b"II*\x00" + b"\x00" * 20)
    flat = tmp_path / "flat.ome.tif"
    tifffile.imwrite(flat, np.zeros((8, 8), np.uint8), ome=True)
    shaped = tmp_path / "shaped.ome.tif"  # a Z-stack, but no OME-XML: not ours
    tifffile.imwrite(shaped, np.zeros((3, 16, 16), np.uint8), ome=False, metadata={"axes": "ZYX"})
    bare = tmp_path / "bare.ome.zarr"
    bare.mkdir()
    (zarr_path / ".zattrs").write_text("{cut")  # damaged attributes: no layout to read
    cases = {
        cut: "not an OME-TIFF stack written by mfpi-run (axes IYX)",
        junk: "cannot read this output (TiffFileError: not a TIFF file",
        empty: "no image in this TIFF",
        flat: "not an OME-TIFF stack written by mfpi-run (axes YX)",
        shaped: "not an OME-TIFF stack written by mfpi-run (axes ZYX)",
        tmp_path / "missing.ome.tif": "no such file",
        tmp_path / "missing.ome.zarr": "no such OME-Zarr folder",
        bare: "not an OME-Zarr written by mfpi-run (no mfpi layout)",
        zarr_path: "not an OME-Zarr written by mfpi-run (no mfpi layout)",
    }
    caplog.set_level(logging.WARNING)
    for path, message in cases.items():
        with pytest.raises(StackReadError) as err:
            StackReader(path)
        assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)
        assert isinstance(err.value, MfpiError)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]  # the cut file's complaints are the error
    if PROC_FDS.is_dir():
        assert _open_fds(cut) == 0  # a refused file is closed again
    with pytest.raises(MfpiError, match=r"give the output a name before its extension \(e.g. slide.ome.tif\)"):
        StackReader(tmp_path / ".ome.tif")  # mfpi-run -o .ome.tif wrote a hidden file
    with pytest.raises(MfpiError, match="must end in .ome.zarr or .ome.tif"):
        StackReader(tmp_path / "stack.png")


def test_an_output_missing_a_level_is_refused_when_opened(tmp_path: Path) -> None:
    """A damaged pyramid is refused at open (mfpi-serve's start), not at the first read of that level."""
    zarr_path, _, _, _ = _stack(tmp_path / "made", channels=3)
    with StackReader(zarr_path) as reader:
        levels = reader.levels
    assert levels >= 2
    import shutil

    shutil.rmtree(zarr_path / "0")  # full resolution gone, lower levels kept
    with pytest.raises(StackReadError) as err:
        StackReader(zarr_path)
    assert str(err.value).startswith(f"{zarr_path}: cannot read this output") and "\n" not in str(err.value)
