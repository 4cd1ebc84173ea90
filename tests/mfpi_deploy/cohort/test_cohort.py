"""A cohort of slides: computed, skipped (finished with the same settings), failed with its reason;
the report (CSV and JSON) and the exit code say which."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfpi_deploy.cli.run import main
from mfpi_deploy.run.state import partial_dir, record_path
from tests.mfpi_deploy.cohort.conftest import engine_args, tree_bytes
from tests.mfpi_deploy.run.helpers import textured, write_tiff


def _corrupt(path: Path) -> Path:
    write_tiff(path, textured(64, 64), tile=(16, 16), compression="zlib")
    data = bytearray(path.read_bytes())
    data[8:40] = b"\xff" * 32  # smash the first IFD
    path.write_bytes(bytes(data))
    return path


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "mfpi-cohort.csv", newline="") as f:
        return {Path(row["slide"]).name: row for row in csv.DictReader(f)}


def test_cohort_of_five_on_two_workers(tmp_path: Path, ckpt: Path, dask_cluster) -> None:
    """5 slides, one corrupt and one finished before: 3 computed, 1 skipped, 1 failed; exit code 1."""
    slides, out = tmp_path / "slides", tmp_path / "out"
    slides.mkdir()
    for i in range(4):
        write_tiff(slides / f"s{i}.tif", textured(72 + 8 * i, 120, seed=i), tile=(32, 32))
    _corrupt(slides / "s4.tif")
    args = engine_args(ckpt)
    out.mkdir()
    first = CliRunner().invoke(main, [str(slides / "s0.tif"), "-o", str(out / "s0.mfp.ome.zarr"), *args])
    assert first.exit_code == 0, first.output
    finished = tree_bytes(out / "s0.mfp.ome.zarr")
    stamp = (out / "s0.mfp.ome.zarr").stat().st_mtime_ns

    result = CliRunner().invoke(
        main, [str(slides), "-o", str(out), "--format", "ome-zarr", "--scheduler", dask_cluster.address, *args]
    )
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: 1 of 5 slide(s) failed; reasons in {out / 'mfpi-cohort.csv'}"
    rows = _rows(out)
    assert {name: row["status"] for name, row in rows.items()} == {
        "s0.tif": "skipped",
        "s1.tif": "done",
        "s2.tif": "done",
        "s3.tif": "done",
        "s4.tif": "failed",
    }
    assert "s4.tif: not a readable TIFF" in rows["s4.tif"]["error"] and "\n" not in rows["s4.tif"]["error"]
    for name in ("s1.tif", "s2.tif", "s3.tif"):
        row = rows[name]
        assert int(row["tiles"]) == 2 * 2 and float(row["seconds"]) > 0 and float(row["megapixels_per_s"]) > 0
        assert row["backend"].startswith("torch") and row["worker"].startswith("tcp://") and not row["error"]
        assert (out / f"{name[:2]}.mfp.ome.zarr").is_dir() and record_path(out / f"{name[:2]}.mfp.ome.zarr").is_file()
    assert int(rows["s0.tif"]["tiles"]) == 0
    report = json.loads((out / "mfpi-cohort.json").read_text())
    assert report["cohort"]["counts"] == {"done": 3, "skipped": 1, "failed": 1}
    assert [Path(r["slide"]).name for r in report["slides"]] == [f"s{i}.tif" for i in range(5)]
    # the skipped output is untouched, the failed slide leaves nothing
    assert (out / "s0.mfp.ome.zarr").stat().st_mtime_ns == stamp and tree_bytes(out / "s0.mfp.ome.zarr") == finished
    assert not (out / "s4.mfp.ome.zarr").exists() and not partial_dir(out / "s4.mfp.ome.zarr").exists()


def test_rerun_skips_by_recorded_settings_not_by_existence(tmp_path: Path, ckpt: Path) -> None:
    """In one process (no Dask): a rerun skips what is finished with the same settings, refuses
    outputs made with other settings (or without a record) unless --overwrite."""
    for i in range(2):
        write_tiff(tmp_path / f"s{i}.tif", textured(40, 48, seed=i))
    args = engine_args(ckpt)
    report = tmp_path / "report"
    slides = [str(tmp_path / "s0.tif"), str(tmp_path / "s1.tif"), "--report", str(report)]

    def statuses() -> list[tuple[str, str]]:
        with open(f"{report}.csv", newline="") as f:
            return [(row["status"], row["error"]) for row in csv.DictReader(f)]

    assert CliRunner().invoke(main, [*slides, *args]).exit_code == 0
    assert [s for s, _ in statuses()] == ["done", "done"]
    again = CliRunner().invoke(main, [*slides, *args])
    assert again.exit_code == 0 and "2 skipped" in again.stdout
    other = CliRunner().invoke(main, [*slides, *args[:-2], "--batch", "1"])  # another batch: other bytes possible
    assert other.exit_code == 1
    assert all(s == "failed" and "exists (made with different batch); pass --overwrite" in e for s, e in statuses())
    record_path(tmp_path / "s1.mfp.ome.tif").unlink()  # an output without its record is not taken as finished
    redo = CliRunner().invoke(main, [*slides, *args, "--overwrite"])
    assert redo.exit_code == 0, redo.output
    assert [s for s, _ in statuses()] == ["skipped", "done"]


@pytest.mark.parametrize("bad", ["no-such-dir/*.tif", "empty-dir"])
def test_no_slides_is_one_line_error(tmp_path: Path, ckpt: Path, bad: str) -> None:
    (tmp_path / "empty-dir").mkdir()
    result = CliRunner().invoke(main, [str(tmp_path / bad), *engine_args(ckpt)])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
