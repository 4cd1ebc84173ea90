"""`mfpi-run` on an exported engine never loads torch: the model card and engine folder are read
through torch-free modules (models.configs, checkpoint.card), and the bundled model's earlier export
is found without importing the exporter, so a run's memory holds no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.mfpi_deploy.run.helpers import textured, write_tiff

SCRIPT = """
import sys
from mfpi_deploy.cli.run import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("torch loaded:", "torch" in sys.modules)
"""


@pytest.mark.parametrize("given", [True, False], ids=["--engine", "bundled model"])
def test_a_run_on_onnxruntime_does_not_import_torch(tmp_path: Path, mfpinet_engine: Path, given: bool) -> None:
    if given:
        slide, engine = (
            write_tiff(tmp_path / "grey.tif", textured(64, 64, channels=1)),
            ["--engine", str(mfpinet_engine)],
        )
    else:
        from mfpi_deploy.export.api import cached_default_engine

        cached_default_engine(log=lambda _: None, int8=False)  # first use exports it (with torch); runs find it
        slide, engine = write_tiff(tmp_path / "rgb.tif", textured(64, 64)), []
    out = tmp_path / "out.mfp.ome.tif"
    args = [str(slide), *engine, "--backend", "ort-cpu", "--output", str(out), "--lossless"]
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert "torch loaded: False" in done.stdout, done.stdout + done.stderr
