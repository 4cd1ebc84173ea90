"""A disk that fills up while the output is finished: one error line with the resume hint, nothing
else on stderr (no asyncio or zarr noise), and --resume then gives the uninterrupted bytes."""

from __future__ import annotations

import filecmp
from pathlib import Path

from mfpi_deploy.run.state import partial_dir
from tests.faults.conftest import cli, start_run


def test_disk_full_in_pyramid_one_line_then_resume(tmp_path: Path, clean_run: tuple) -> None:
    src, args, clean = clean_run
    out = tmp_path / "out.ome.tif"
    proc = start_run([src, "-o", out, *args], "--enospc-finish")  # the file is assembled after all tiles
    _, err = proc.communicate(timeout=120)
    stderr = err.decode()
    assert proc.returncode == 2, stderr
    lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines[-1].startswith("error: no space left on device while finishing") and "--resume" in lines[-1]
    assert [ln for ln in lines if ln.startswith("error:")] == [lines[-1]]
    assert len(lines) == 2, stderr  # the run's one info line, then the error: nothing else
    assert not out.exists() and partial_dir(out).is_dir()
    result = cli([src, "-o", out, *args, "--resume"])
    assert result.exit_code == 0, result.output
    assert filecmp.cmp(out, clean, shallow=False)
