"""Cohort inputs: paths, globs, folders and CSV/TSV manifests -> slide jobs (no Dask needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfpi_deploy.cohort.jobs import SlideOverrides, collect_jobs, is_cohort
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.slide.source import Region


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"x")


def test_folder_and_glob_skip_outputs_and_hidden_files(tmp_path: Path) -> None:
    _touch(tmp_path, "b.svs", "a.ome.tif", "a.mfp.ome.tif", ".hidden.tif", "notes.txt")
    jobs = collect_jobs([str(tmp_path)])
    assert [j.input.name for j in jobs] == ["a.ome.tif", "b.svs"]
    assert [j.output.name for j in jobs] == ["a.mfp.ome.tif", "b.mfp.ome.tif"]
    out = tmp_path / "out"
    jobs = collect_jobs([str(tmp_path / "*.tif")], folder=out, fmt=OutputFormat.OME_ZARR)
    assert [(j.input.name, j.output) for j in jobs] == [("a.ome.tif", out / "a.mfp.ome.zarr")]
    assert is_cohort([str(tmp_path)]) and is_cohort(["x*.tif"]) and is_cohort(["a.tif", "b.tif"])
    assert not is_cohort([str(tmp_path / "a.ome.tif")])
    with pytest.raises(MfpiError, match="no slide matches"):
        collect_jobs([str(tmp_path / "*.ndpi")])


def test_manifest_columns_relative_paths_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "input,output,region,level,pixel_size,input_max,convert_channels\n"
        'one.tif,res/one.ome.zarr,"10,20,30,40",1,0.25,4095,yes\n'
        "# a comment row\n"
        "/abs/two.svs,,,,,,\n"
    )
    one, two = collect_jobs([str(tmp_path / "m.csv")])
    assert one.input == tmp_path / "one.tif" and one.output == tmp_path / "res/one.ome.zarr"
    assert one.overrides == SlideOverrides(
        level=1, region=Region(10, 20, 30, 40), pixel_size_um=0.25, input_max=4095, convert_channels=True
    )
    opts = one.overrides.apply(RunOptions(halo=32))
    assert (opts.level, opts.region, opts.halo, opts.convert_channels) == (1, Region(10, 20, 30, 40), 32, True)
    assert two.input == Path("/abs/two.svs") and two.output == Path("/abs/two.mfp.ome.tif")
    assert two.overrides == SlideOverrides()
    (tmp_path / "t.tsv").write_text("input\tlevel\nthree.tif\t2\n")
    assert collect_jobs([str(tmp_path / "t.tsv")])[0].overrides.level == 2


@pytest.mark.parametrize(
    "text, match",
    [
        ("slide\nx.tif\n", "needs an 'input' column"),
        ("input,colour\nx.tif,red\n", "unknown column"),
        ("input,level\nx.tif,two\n", r"m.csv:2: level must be a number"),
        ("input,pixel_size\nx.tif,-1\n", "pixel size must be > 0"),
        ("input,output\nx.tif,x.png\n", "must end in .ome.zarr or .ome.tif"),
        ("input,output\nx.tif,o.ome.tif\ny.tif,o.ome.tif\n", "would both write"),
    ],
)
def test_bad_manifests_are_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(MfpiError, match=match):
        collect_jobs([str(tmp_path / "m.csv")])


def test_core_install_runs_without_dask(tmp_path: Path) -> None:
    """With dask and distributed missing: single slides and in-process cohorts run, --workers 2 says
    which extra to install (one line, exit 2)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = f"""
import sys
sys.modules['dask'] = sys.modules['distributed'] = None  # as if not installed
from pathlib import Path
from click.testing import CliRunner
from mfpi_deploy.cli.run import main
from tests.mfpi_deploy.run.helpers import textured, tiny_checkpoint, write_tiff
tmp = Path({str(tmp_path)!r})
ckpt = tiny_checkpoint(tmp / 'ckpt')
args = ['--engine', str(ckpt), '--backend', 'torch', '--threads', '1', '--quiet']
slides = [str(write_tiff(tmp / f's{{i}}.tif', textured(24, 24, seed=i))) for i in range(2)]
assert CliRunner().invoke(main, [slides[0], *args]).exit_code == 0
assert CliRunner().invoke(main, [*slides, '--report', str(tmp / 'r'), '--overwrite', *args]).exit_code == 0
res = CliRunner().invoke(main, [slides[0], '-o', str(tmp / 'w.ome.zarr'), '--workers', '2', *args])
assert res.exit_code == 2 and "needs Dask: pip install 'mfpi-deploy[dask]'" in res.stderr, res.output
assert not any(m.split('.')[0] in ('dask', 'distributed') and sys.modules[m] is not None for m in sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
