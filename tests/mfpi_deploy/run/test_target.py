"""run.target: what an existing output or its partial run means for the run asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.run import RunOptions
from mfpi_deploy.run.state import partial_dir
from mfpi_deploy.run.target import check_output_target


def test_an_existing_output_is_explained_by_what_was_asked(tmp_path: Path) -> None:
    out, src = tmp_path / "a.ome.tif", tmp_path / "a.tif"
    src.write_bytes(b"slide")
    out.write_bytes(b"finished")
    with pytest.raises(MfpiError, match="exists; pass --overwrite to replace it"):
        check_output_target(out, RunOptions(), src)
    with pytest.raises(MfpiError, match="is finished: nothing to resume"):
        check_output_target(out, RunOptions(resume=True), src)
    partial_dir(out).mkdir()  # an --overwrite run that was stopped: its partial replaces the output
    with pytest.raises(MfpiError, match="pass --resume --overwrite to continue that run"):
        check_output_target(out, RunOptions(resume=True), src)
    check_output_target(out, RunOptions(resume=True, overwrite=True), src)
    check_output_target(out, RunOptions(overwrite=True), src)


def test_the_input_is_never_the_output(tmp_path: Path) -> None:
    src = tmp_path / "a.ome.tif"
    src.write_bytes(b"slide")
    (tmp_path / "hard.ome.tif").hardlink_to(src)
    folder = tmp_path / "run.ome.zarr"
    folder.mkdir()
    (folder / "b.tif").write_bytes(b"slide inside the output folder")
    for out, source in ((src, src), (tmp_path / "hard.ome.tif", src), (folder, folder / "b.tif")):
        with pytest.raises(MfpiError, match="is the input slide"):
            check_output_target(out, RunOptions(overwrite=True), source)
    check_output_target(tmp_path / "new.ome.tif", RunOptions(), src)


def test_a_missing_folder_is_refused_for_the_output_and_the_preview(tmp_path: Path) -> None:
    from mfpi_deploy.run.options import PreviewOptions

    src = tmp_path / "a.tif"
    src.write_bytes(b"slide")
    with pytest.raises(MfpiError, match=r"^output folder .*nope does not exist$"):
        check_output_target(tmp_path / "nope" / "a.ome.tif", RunOptions(), src)
    looks = RunOptions(preview=PreviewOptions(path=tmp_path / "typo" / "look.png"))
    with pytest.raises(MfpiError, match=r"^preview folder .*typo does not exist$"):
        check_output_target(tmp_path / "a.ome.tif", looks, src)
    assert not (tmp_path / "typo").exists()
    check_output_target(tmp_path / "a.ome.tif", RunOptions(preview=PreviewOptions()), src)  # beside the output
