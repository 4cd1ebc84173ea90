"""`mfpi-run` on an exported engine never loads torch: the model card and engine folder are read
through torch-free modules (models.configs, checkpoint.card), so a run's memory holds no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.mfpi_deploy.run.helpers import textured, write_tiff

SCRIPT = """
import sys
from mfpi_deploy.cli.run import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("torch loaded:", "torch" in sys.modules)
"""


def test_a_run_on_an_onnxruntime_engine_does_not_import_torch(tmp_path: Path, mfpinet_engine: Path) -> None:
    slide = tmp_path / "grey.tif"
    write_tiff(slide, textured(64, 64, channels=1))
    out = tmp_path / "grey.mfp.ome.tif"
    args = [str(slide), "--engine", str(mfpinet_engine), "--backend", "ort-cpu", "--output", str(out), "--lossless"]
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert "torch loaded: False" in done.stdout, done.stdout + done.stderr
