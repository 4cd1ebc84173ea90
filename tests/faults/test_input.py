"""Damaged or unusual input, bad options, no disk space: one `error:` line, exit 2, nothing left."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from mfpi_deploy.output.pyramid import PyramidBuilder
from mfpi_deploy.run import target
from mfpi_deploy.run.sample import write_pyramidal_rgb
from tests.faults.conftest import SMALL, cli, listing, refused
from tests.mfpi_deploy.run.helpers import textured, write_tiff


def _cut_ome(path: Path) -> list[str]:
    """A pyramidal OME-TIFF cut at 99.9% of its bytes: its OME-XML (written last) is lost."""
    write_pyramidal_rgb(path, textured(256, 256), 0.5)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.999)])
    return []


def _empty_tiles(path: Path) -> list[str]:
    """Tiles 5 and 6 of 16 with TileByteCounts 0 (readers decode them as black)."""
    write_tiff(path, textured(64, 64), tile=(16, 16), compression="zlib")
    with tifffile.TiffFile(path, mode="r+") as tif:
        counts = list(tif.pages[0].databytecounts)
        counts[5] = counts[6] = 0
        tif.pages[0].tags["TileByteCounts"].overwrite(counts)
    return []


def _huge_header(path: Path) -> list[str]:
    """A small tiled file whose header is patched to claim 10^6 x 10^6 pixels."""
    write_tiff(path, textured(64, 64), tile=(16, 16), compression="zlib")
    with tifffile.TiffFile(path, mode="r+") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(10**6)
        tif.pages[0].tags["ImageLength"].overwrite(10**6)
    return []


def _one_bit(path: Path) -> list[str]:
    Image.fromarray(np.random.default_rng(0).random((64, 64)) > 0.5).save(path)
    return []


def _two_series(path: Path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(textured(32, 32), photometric="rgb", metadata={"axes": "YXS"})
        tif.write(textured(48, 40, seed=1), photometric="rgb", metadata={"axes": "YXS"})


def _missing_series(path: Path) -> list[str]:
    _two_series(path)
    return ["--series", "2"]


def _negative_pixel_size(path: Path) -> list[str]:
    write_tiff(path, textured(32, 32))
    return ["--pixel-size", "-1"]


# case -> (make the input and return extra options, words the one error line must contain)
CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "ome-tiff-cut-at-99.9%": (_cut_ome, ["truncated", "ImageDescription", "OME-XML", "past the end of the file"]),
    "zero-byte-tiles": (
        _empty_tiles,
        ["2 of 16 tiles hold no pixel data", "x=16 y=16, x=32 y=16", "--allow-empty-tiles"],
    ),
    "header-claims-10^6-pixels-square": (
        _huge_header,
        ["1000000x1000000", "needs 3906250000 tiles", "the file lists 16"],
    ),
    "1-bit": (_one_bit, ["1-bit"]),
    "series-out-of-range": (_missing_series, ["series 2 does not exist", "2 series"]),
    "pixel-size-negative": (_negative_pixel_size, ["--pixel-size must be a positive number"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_refused(tmp_path: Path, ckpt: Path, caplog: pytest.LogCaptureFixture, case: str) -> None:
    make, words = CASES[case]
    src = tmp_path / "in.tif"
    extra = make(src)
    before = listing(tmp_path)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        line = refused(cli([src, "-o", tmp_path / "out.ome.tif", "--engine", ckpt, *SMALL, *extra]))
    assert time.monotonic() - started < 10
    for word in words:
        assert word in line, line
    assert listing(tmp_path) == before  # no output, no partial run, no lock file
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]  # no stray library log line


def test_empty_tiles_allowed_are_reported(tmp_path: Path, ckpt: Path) -> None:
    src = tmp_path / "in.tif"
    _empty_tiles(src)
    result = cli([src, "-o", tmp_path / "out.ome.zarr", "--engine", ckpt, *SMALL, "--allow-empty-tiles"])
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert any("2 of 16 tiles hold no pixel data" in w and "read as black" in w for w in warnings), result.stderr


def test_series_choice_is_named_and_selectable(tmp_path: Path, ckpt: Path) -> None:
    src = tmp_path / "two.ome.tif"
    _two_series(src)
    args = ["--engine", ckpt, *SMALL]
    first = cli([src, "-o", tmp_path / "a.ome.tif", *args])
    assert first.exit_code == 0, first.output
    assert "holds 2 images (series); running series 0 (32x32)" in first.stderr
    second = cli([src, "-o", tmp_path / "b.ome.tif", "--series", "1", *args])
    assert second.exit_code == 0, second.output
    assert "running series 1 (40x48)" in second.stderr
    assert tifffile.imread(tmp_path / "b.ome.tif").shape == (11, 96, 80, 3)


def test_not_enough_disk_space_refused_before_the_first_tile(
    tmp_path: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_tiff(tmp_path / "in.tif", textured(64, 64))
    real = shutil.disk_usage
    monkeypatch.setattr(target.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    written: list = []
    monkeypatch.setattr(PyramidBuilder, "add_engine_tile", lambda *a, **k: written.append(a))
    before = listing(tmp_path)
    line = refused(cli([src, "-o", tmp_path / "out.ome.tif", "--engine", ckpt, *SMALL]))
    assert "not enough disk space" in line and "has 1.0 KB free" in line and "100:1" in line, line
    assert written == [] and listing(tmp_path) == before


def test_empty_pth_refused_by_export(tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    line = refused(cli([tmp_path / "empty.pth", "--out", tmp_path / "engine"], command="export"))
    assert "empty.pth: empty file (0 bytes)" in line
    assert listing(tmp_path) == ["empty.pth"]


def test_card_wider_than_weights_refused_without_building_it(
    tmp_path: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card saying width 9999 over width-4 weights: refused from the safetensors header, the
    network built only on the meta device (never allocated)."""
    import json

    import torch

    from mfpi_deploy.checkpoint import io

    wide = shutil.copytree(ckpt, tmp_path / "wide")
    card = json.loads((wide / "card.json").read_text())
    card["config"]["width"] = 9999
    (wide / "card.json").write_text(json.dumps(card))
    built: list[str] = []
    real = io.create_model

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(torch.empty(0).device.type)
        return real(*args, **kwargs)

    monkeypatch.setattr(io, "create_model", watched)
    line = refused(cli([wide, "--out", tmp_path / "engine"], command="export"))
    assert "does not fit the mfpinet its card describes" in line and "width=9999" in line
    assert "in_conv.weight (4, 3, 7, 7) != (9999, 3, 7, 7)" in line
    assert built == ["meta"]
    assert not (tmp_path / "engine").exists()


def test_unexpected_error_is_one_line_and_traceback_only_with_mfpi_debug(
    tmp_path: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here: a tile writer that raises RuntimeError) is one `error: unexpected ...` line,
    exit 1; MFPI_DEBUG=1 adds the traceback."""
    from click.testing import CliRunner

    from mfpi_deploy.cli.run import main

    src = write_tiff(tmp_path / "in.tif", textured(32, 32))

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("kernel exploded\nsecond line")

    monkeypatch.setattr(PyramidBuilder, "add_engine_tile", broken)
    args = [str(src), "-o", str(tmp_path / "o.ome.tif"), "--engine", str(ckpt), *SMALL, "--overwrite"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.stderr.strip().splitlines()[-1]
        == "error: unexpected RuntimeError: kernel exploded (set MFPI_DEBUG=1 for the traceback)"
    )
    assert len([ln for ln in result.stderr.splitlines() if ln.startswith("error:")]) == 1
    debug = CliRunner().invoke(main, args, env={"MFPI_DEBUG": "1"})
    assert debug.exit_code == 1 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: unexpected RuntimeError")
    assert not (tmp_path / "o.ome.tif").exists()  # the partial run is kept for --resume, as after a crash
