"""The export gates of the bundled model as a user runs them: `mfpi-export default --fp16 --int8 --bf16`
with its default options; records every gate figure from the manifest with the conditions.

    python benchmarks/export/bundled.py [--out benchmarks/export/results/bundled-default]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "run"))
from common import write_report  # noqa: E402

from mfpi_deploy.export.api import ExportOptions, export_model  # noqa: E402


def lowest(section: dict) -> float | None:
    values = [v for k, v in section.items() if k.startswith("min_psnr")]
    return min(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/export/results/bundled-default"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        options = ExportOptions(fp16=True, int8=True, bf16=True)
        folder = export_model("default", Path(tmp) / "engine", options, log=print)
        manifest = json.loads((folder / "manifest.json").read_text())
    acc = manifest["accuracy"]
    lines = [
        "# Export gates of the bundled model",
        "",
        "`mfpi-export default --fp16 --int8 --bf16` with default options (`python benchmarks/export/bundled.py`).",
        "",
        f"- fp32 ONNX against PyTorch: largest difference {acc['onnx_parity']['max_abs_diff']} level(s), "
        f"{acc['onnx_parity']['share_differing']:.2e} of the uint8 values differ.",
    ]
    for name in ("fp16", "int8", "bf16"):
        section = acc.get(name)
        if not isinstance(section, dict):
            continue
        mins = {k: v for k, v in section.items() if k.startswith("min_psnr") and isinstance(v, (int, float))}
        figures = ", ".join(f"{k} {v:.1f} dB" for k, v in sorted(mins.items()))
        gate = section.get("threshold_db")
        lines.append(f"- {name} against fp32, lowest per-plane PSNR: {figures} (gate {gate} dB).")
    write_report(args.out, {"accuracy": acc, "source": manifest.get("source")}, lines)


if __name__ == "__main__":
    main()
