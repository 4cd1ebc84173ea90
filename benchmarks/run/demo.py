"""End-to-end demo on the built-in default: simulated sample slide -> mfpi-run -> stack -> picture.

Runs the real command line (`python -m mfpi_deploy.cli.run`), then draws the input, a few
predicted planes and the simulator's ground truth for the same planes side by side.

    python benchmarks/run/demo.py [--size 512] [--backend auto]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tifffile
from common import ROOT

SHOW = (0, 3, 5, 7, 10)  # plane indices: -13.5, -5.4, 0, +5.4, +13.5 um


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--engine", help="engine folder or checkpoint (default: the bundled model)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/run/results/demo_planes.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mfpi_deploy.run.sample import make_sample

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.tif"
        run = [sys.executable, "-m", "mfpi_deploy.cli.run"]
        subprocess.run([*run, "--make-sample", str(sample), "--sample-size", str(args.size)], check=True, cwd=ROOT)
        engine = ["--engine", args.engine] if args.engine else []
        subprocess.run([*run, str(sample), "--backend", args.backend, *engine], check=True, cwd=ROOT)
        stack_path = Path(tmp) / "sample.mfp.ome.tif"
        with tifffile.TiffFile(stack_path) as tif:
            stack = tif.series[0].asarray()  # (Z, Y, X, 3)
            ome = tif.ome_metadata
        image = tifffile.imread(sample)
    truth = make_sample(args.size).truth  # same seed: the ground truth of this sample
    planes_um = [round(2.7 * (i - 5), 1) for i in range(11)]
    crop = slice(0, min(2 * args.size, 512))
    fig, axes = plt.subplots(2, len(SHOW) + 1, figsize=(3 * (len(SHOW) + 1), 6.4))
    axes[0, 0].imshow(image[: crop.stop // 2, : crop.stop // 2], interpolation="nearest")
    axes[0, 0].set_title("input (sample.tif)")
    axes[1, 0].axis("off")
    axes[1, 0].text(0.0, 0.5, "top: mfpi-run output\nbottom: simulated truth", fontsize=11, va="center")
    for j, z in enumerate(SHOW, start=1):
        axes[0, j].imshow(stack[z, crop, crop])
        axes[0, j].set_title(f"output z = {planes_um[z]:+.1f} µm")
        axes[1, j].imshow(truth[z, crop, crop])
        axes[1, j].set_title(f"truth z = {planes_um[z]:+.1f} µm")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"mfpi-run on a simulated {args.size}x{args.size} slide: stack {stack.shape} "
        f"({'PhysicalSizeZ' in ome and 'OME-TIFF with physical sizes'})"
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
