"""Measure the halo that makes tiled output equal whole-image output (sets tiling.DEFAULT_HALO).

For each candidate halo, run the real pipeline (`run_slide`, default tile choice for an
onnxruntime/torch profile, opt tile 384) over a 1024x1024 image and compare its level 0 with
one whole-image pass over the image reflect-padded by 256 px (more than half the 430 px
receptive field). Criterion: >= 99.9 % of uint8 values identical and none off by more than 2.

    python benchmarks/run/halo.py [--checkpoint default|PATH] [--size 1024] [--halos 8,16,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import tifffile
import torch
from common import ROOT, sample_image, write_report

from mfpi_deploy.backends.torch_backend import TorchBackend
from mfpi_deploy.checkpoint import load_checkpoint
from mfpi_deploy.checkpoint.card import ModelCard
from mfpi_deploy.checkpoint.default import resolve_checkpoint
from mfpi_deploy.checkpoint.io import Checkpoint
from mfpi_deploy.infer import whole_image
from mfpi_deploy.models import create_model
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run import RunOptions, run_slide

REFERENCE_PAD = 224  # > 215, half the receptive field


@torch.no_grad()
def spread_output(model: torch.nn.Module, image: np.ndarray, target: float) -> float:
    """Scale the last conv of a random MFPINet so the pre-tanh output std is `target`."""
    last = model.conv_block[2]
    seen = []
    hook = last.register_forward_hook(lambda m, i, o: seen.append(o.std().item()))
    x = torch.from_numpy(image[:256, :256]).permute(2, 0, 1)[None].float() / 255
    model(x)
    hook.remove()
    gain = target / seen[0]
    last.weight.mul_(gain)
    last.bias.mul_(gain)
    return gain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="random", help="'random' (full-width, seeded), 'default' or a path")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--halos", default="0,8,16,24,32,48,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--spread",
        type=float,
        default=1.0,
        help="random model only: scale the last conv so its pre-tanh output has this std "
        "(a fresh network's output is nearly constant, which would make any halo pass)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks/run/results/halo"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint == "random":
        ckpt = Checkpoint(create_model("mfpinet").eval(), ModelCard("mfpinet", {}))
        model_name = "randomly initialised MFPINet (width 64, seed 0)"
    image, image_name = sample_image(args.size)
    if args.checkpoint == "random" and args.spread:
        gain = spread_output(ckpt.model, image, args.spread)
        model_name += f", last conv scaled x{gain:.1f} for pre-tanh std {args.spread}"
    else:
        ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint))
        model_name = f"checkpoint {args.checkpoint}"
    backend = TorchBackend(ckpt)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.tif"
        tifffile.imwrite(src, image, tile=(256, 256))
        t = time.perf_counter()
        ref = whole_image(image, backend, REFERENCE_PAD)
        ref_s = time.perf_counter() - t
        print(f"reference: {ref_s:.1f} s; output std {ref.std():.1f}, range {ref.min()}..{ref.max()}", flush=True)
        for halo in [int(h) for h in args.halos.split(",")]:
            out = Path(tmp) / f"h{halo}.ome.zarr"
            s = run_slide(src, out, backend, RunOptions(halo=halo, progress=False, log=lambda m: None))
            got = np.moveaxis(zarr_stack.open_level(out, 0)[:], 0, -1)
            diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
            row = {
                "halo": halo,
                "tile": s.tile,
                "tiles": s.tiles,
                "waste": round(s.halo_overhead, 4),
                "identical": float((diff == 0).mean()),
                "max_diff": int(diff.max()),
                "off_by_more_than_1": float((diff > 1).mean()),
                "seconds": round(s.seconds, 1),
            }
            row["passes"] = row["identical"] >= 0.999 and row["max_diff"] <= 2
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "model": model_name,
        "image": f"{args.size}x{args.size} {image_name}",
        "reference_pad": REFERENCE_PAD,
        "reference_seconds": round(ref_s, 1),
        "output_std": float(ref.std()),
        "rows": rows,
        "smallest_passing_halo": next((r["halo"] for r in rows if r["passes"]), None),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    lines = [
        f"# Halo measurement: {model_name}",
        "",
        f"Image: {result['image']}. Reference: one whole-image pass, reflect-padded by {REFERENCE_PAD} px. "
        f"Output std {result['output_std']:.1f} (uint8). Measured {result['date']} with `benchmarks/run/halo.py`.",
        "",
        "| halo | tile | tiles | halo overhead | identical uint8 | max diff | passes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['halo']} | {r['tile']} | {r['tiles']} | {100 * r['waste']:.1f}% | "
            f"{100 * r['identical']:.3f}% | {r['max_diff']} | {'yes' if r['passes'] else 'no'} |"
        )
    lines += [
        "",
        f"Smallest halo meeting the criterion (>= 99.9% identical, max diff <= 2): {result['smallest_passing_halo']}",
    ]
    write_report(args.out, result, lines)


if __name__ == "__main__":
    main()
