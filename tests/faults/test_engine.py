"""Damaged engine folders are refused through `mfpi-run --engine DIR` before any tile is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mfpi_deploy.slide.tiff import TiffSlide
from tests.faults.conftest import cli, listing, refused
from tests.mfpi_deploy.run.helpers import textured, write_tiff


def _edit_manifest(folder: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _changed_onnx(folder: Path) -> None:
    with open(folder / "model.onnx", "ab") as f:
        f.write(b"\0")


def _planes(folder: Path) -> None:
    # consistent in itself (5 offsets for 5 planes; a mismatch there is refused when the manifest is read),
    # but not what the graph gives
    _edit_manifest(folder, lambda d: d["engine"].update(planes=5, planes_um=d["engine"]["planes_um"][:5]))


def _scale(folder: Path) -> None:
    _edit_manifest(folder, lambda d: d["engine"].update(scale=4))


def _escape(folder: Path) -> None:
    other = folder.parent / "other"
    other.mkdir()
    shutil.copy(folder / "model.onnx", other / "model.onnx")  # a valid graph, outside the folder
    _edit_manifest(folder, lambda d: d["artifacts"]["onnx"].update(file="../other/model.onnx"))


# case -> (damage, words the one error line must contain)
CASES = {
    "changed-model-onnx": (_changed_onnx, ["model.onnx", "SHA-256 differs from the manifest"]),
    "manifest-5-planes": (_planes, ["manifest says", "5 planes", "(1, 11,"]),
    "manifest-scale-4": (_scale, ["manifest says", "at 4x"]),
    "artifact-outside-folder": (_escape, ["'../other/model.onnx' leaves the engine folder"]),
}


@pytest.mark.parametrize("backend", ["ort-cpu", "torch"])
@pytest.mark.parametrize("case", list(CASES))
def test_damaged_engine_refused_before_any_tile(
    tmp_path: Path, engine: Path, monkeypatch: pytest.MonkeyPatch, case: str, backend: str
) -> None:
    damage, words = CASES[case]
    folder = shutil.copytree(engine, tmp_path / "engine")
    damage(folder)
    work = tmp_path / "work"
    work.mkdir()
    src = write_tiff(work / "slide.tif", textured(64, 64), tile=(16, 16))
    reads: list[tuple] = []
    real_read = TiffSlide.read
    monkeypatch.setattr(TiffSlide, "read", lambda self, *a: reads.append(a) or real_read(self, *a))
    before = listing(work)
    line = refused(cli([src, "-o", work / "out.ome.tif", "--engine", folder, "--backend", backend, "--quiet"]))
    for word in words:
        assert word in line, line
    assert reads == []  # refused before any tile was read
    assert listing(work) == before  # no output, no partial run, no lock file


def test_intact_engine_runs(tmp_path: Path, engine: Path) -> None:
    """The control: the undamaged folder runs on both backends."""
    src = write_tiff(tmp_path / "slide.tif", textured(32, 32))
    for backend in ("ort-cpu", "torch"):
        result = cli(
            [
                src,
                "-o",
                tmp_path / f"{backend}.ome.zarr",
                "--engine",
                engine,
                "--backend",
                backend,
                "--quiet",
                "--tile",
                "32",
                "--halo",
                "8",
            ]
        )
        assert result.exit_code == 0, result.output
