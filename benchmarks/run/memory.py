"""Peak memory of `run_slide` as the slide grows: 1024x1024 vs 4096x4096 (goal: within 300 MB).

Each size runs in a fresh subprocess (peak RSS = ru_maxrss of that process) with a small
test model (MFPINet width 8, torch backend, 2 threads), writing an OME-TIFF (so the
Zarr -> TIFF conversion is measured too).

    python benchmarks/run/memory.py [--sizes 1024,4096] [--format .ome.tif]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_report


def child(src: str, out: str, ckpt: str) -> None:
    import torch

    from mfpi_deploy.backends.torch_backend import TorchBackend
    from mfpi_deploy.checkpoint import load_checkpoint
    from mfpi_deploy.run import RunOptions, run_slide

    torch.set_num_threads(2)
    backend = TorchBackend(load_checkpoint(ckpt))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = run_slide(src, out, backend, RunOptions(progress=False, log=lambda m: None))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "peak_rss_mb": peak / 1024,
                "rss_before_run_mb": base / 1024,
                "tiles": s.tiles,
                "tile": s.tile,
                "seconds": round(s.seconds, 1),
                "mp_per_s": round(s.megapixels_per_second, 3),
                "output_mb": round(Path(out).stat().st_size / 2**20, 1),
            }
        )
    )


def write_slide(path: Path, size: int) -> None:
    """A tiled RGB TIFF written tile by tile (smooth pattern plus noise)."""
    import numpy as np
    import tifffile

    tile = 256
    rng = np.random.default_rng(0)

    def tiles():
        for y in range(0, size, tile):
            for x in range(0, size, tile):
                yy, xx = np.mgrid[y : y + tile, x : x + tile].astype(np.float32)
                base = np.stack([np.sin(yy / (9 + 4 * c)) * np.cos(xx / (13 + 3 * c)) for c in range(3)], -1)
                yield (np.clip(0.5 + 0.35 * base + 0.15 * rng.random((tile, tile, 3)), 0, 1) * 255).astype(np.uint8)

    tifffile.imwrite(
        path,
        tiles(),
        shape=(size, size, 3),
        dtype=np.uint8,
        tile=(tile, tile),
        photometric="rgb",
        compression="zlib",
        resolution=(1e4 / 0.5, 1e4 / 0.5),
        resolutionunit="CENTIMETER",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--format", default=".ome.tif")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/run/results/memory"))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    import torch

    from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
    from mfpi_deploy.models import create_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ckpt = Path(tmp) / "ckpt"
        save_checkpoint(create_model("mfpinet", width=8), ModelCard("mfpinet", {"width": 8}), ckpt)
        for size in [int(s) for s in args.sizes.split(",")]:
            src = Path(tmp) / f"in{size}.tif"
            write_slide(src, size)
            out = Path(tmp) / f"out{size}{args.format}"
            res = subprocess.run(
                [sys.executable, __file__, "--child", str(src), str(out), str(ckpt)],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if res.returncode:
                sys.exit(res.stderr)
            row = {"size": size, **json.loads(res.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    result = {
        "model": "MFPINet width 8 (random), torch backend, 2 threads",
        "format": args.format,
        "rows": rows,
        "peak_growth_mb": round(growth, 1),
        "goal_mb": 300,
        "passes": growth <= 300,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    lines = [
        "# Memory flatness of run_slide",
        "",
        f"{result['model']}, output {args.format}, default tile/halo. Peak RSS of a fresh process "
        f"(ru_maxrss). Measured {result['date']} with `benchmarks/run/memory.py`.",
        "",
        "| input | tiles | peak RSS (MB) | RSS before run (MB) | time (s) | MP/s | output (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}x{r['size']} | {r['tiles']} | {r['peak_rss_mb']:.0f} | {r['rss_before_run_mb']:.0f} "
            f"| {r['seconds']} | {r['mp_per_s']} | {r['output_mb']} |"
        )
    lines += [
        "",
        f"Peak growth from {rows[0]['size']} to {rows[-1]['size']}: {growth:.0f} MB "
        f"(goal <= 300 MB: {'met' if result['passes'] else 'NOT met'}).",
    ]
    write_report(args.out, result, lines)


if __name__ == "__main__":
    main()
