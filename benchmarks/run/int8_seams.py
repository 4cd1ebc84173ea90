"""Why INT8 tiled output differs from one whole-image pass more than fp32 does (tile seams).

The bundled model is exported (fp32 + the gated int8 QDQ graph); the sample slide
(`mfpi-run --make-sample`, 512x512) is run through mfpi-run's pipeline (`run_slide`) with
tile 384 at several halos, and compared with one whole-image pass. Two controls separate
the candidate causes:
- per-tile requantisation: the int8 graph's QuantizeLinear scales and zero points are
  listed (constants: static quantisation, the same for every tile) and the graph is
  searched for dynamic quantisation (DynamicQuantizeLinear);
- context beyond the halo (the network's receptive field, RF_RADIUS px each side, is far
  wider than the default halo): whole pass padded by REF_PAD (> RF_RADIUS, so every output
  pixel sees only real or mirrored image) against the same pass padded by 32 more: nothing
  any output pixel sees changes, only the array's shape. A difference there is numerics
  that depend on the input's shape, not context;
- the halo: tiled at halo 48 (default), 96, 224 (> RF_RADIUS: each tile core sees all of
  its receptive field, as in the whole pass). If the halo were the cause, 224 would be
  identical to the whole pass.

    python benchmarks/run/int8_seams.py [--size 512] [--threads 2] [--out benchmarks/run/results/int8-seams]
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
import onnx
import tifffile
from common import ROOT, write_report

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.export.accuracy import psnr_per_plane
from mfpi_deploy.export.api import ExportOptions, export_model
from mfpi_deploy.gitinfo import git_commit
from mfpi_deploy.infer import whole_image
from mfpi_deploy.machine import conditions, load_average
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run import RunOptions, run_slide
from mfpi_deploy.run.sample import make_sample

RF_RADIUS = 215  # half of MFPINet's 430 px receptive field (benchmarks/run/halo.py)
REF_PAD = 224  # > RF_RADIUS, a multiple of the stride
SHAPE_PAD = REF_PAD + 32  # the shape-only control: nothing within RF_RADIUS of the image changes
HALOS = (48, 96, 224)
ENGINES = (("openvino", "fp32"), ("openvino", "int8"), ("ort-cpu", "int8"))


def comparison_table(rows: dict[str, dict]) -> list[str]:
    """Markdown rows of `compare` results, one per engine."""
    return ["| engine | identical | max diff | lowest plane PSNR |", "|---|---|---|---|"] + [
        f"| {name} | {100 * c['identical']:.2f}% | {c['max_diff']} | {c['psnr_min_db']:.1f} dB |"
        for name, c in rows.items()
    ]


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "identical": float((d == 0).mean()),
        "max_diff": int(d.max()),
        "psnr_min_db": min(psnr_per_plane(a[None], b[None])),
    }


def by_seam_distance(a: np.ndarray, b: np.ndarray, core: int, scale: int) -> dict[str, float]:
    """Share of identical values by an output pixel's distance (input px) to the nearest core edge."""
    h, w = a.shape[1:3]
    dy = np.arange(h) // scale % core
    dx = np.arange(w) // scale % core
    dist = np.minimum.outer(np.minimum(dy, core - 1 - dy), np.minimum(dx, core - 1 - dx))
    same = (a == b).mean(axis=(0, 3))  # share of the pixel's values (planes x channels) identical
    return {
        f"{lo}-{hi}": float(same[(dist >= lo) & (dist < hi)].mean())
        for lo, hi in ((0, 16), (16, 48), (48, 96), (96, core))
        if ((dist >= lo) & (dist < hi)).any()
    }


def quantisation(path: Path) -> dict[str, object]:
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    return {
        "quantize_linear": len(q),
        "dynamic_quantize_linear": ops.count("DynamicQuantizeLinear"),
        "scales_are_constants": all(n.input[1] in consts and n.input[2] in consts for n in q),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--tile", type=int, default=None, help="tile side (default: 384 + 2 * (halo - 48), core 288)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/run/results/int8-seams"))
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = list(load_average() or ())
    image = make_sample(args.size, 0).image
    rows, shape_control, whole_vs_fp32 = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = export_model(
            "default",
            Path(tmp) / "engine",
            ExportOptions(int8=True, tiles=(384,), gate_tile=64, gate_count=2, threads=args.threads),
            log=lambda _: None,
        )
        manifest = json.loads((engine / "manifest.json").read_text())
        quant = quantisation(engine / "model.int8.onnx")
        src = Path(tmp) / "in.tif"
        tifffile.imwrite(src, image, tile=(256, 256))
        for kind, precision in ENGINES:
            with open_backend(kind, engine, precision=precision, threads=args.threads, log=lambda _: None) as be:
                whole, shifted = whole_image(image, be, REF_PAD), whole_image(image, be, SHAPE_PAD)
                shape_control[f"{kind} {precision}"] = compare(shifted, whole)
                if (kind, precision) == ENGINES[0]:
                    fp32_whole = whole  # the reference every precision's gate is measured against
                whole_vs_fp32[f"{kind} {precision}"] = compare(whole, fp32_whole)
                for halo in HALOS:
                    tile = args.tile or 384 + 2 * (halo - 48)  # the same core (288) at every halo
                    out = Path(tmp) / f"{kind}-{precision}-{halo}.ome.zarr"
                    run_slide(
                        src, out, be, RunOptions(tile=tile, halo=halo, batch=1, progress=False, log=lambda _: None)
                    )
                    got = np.moveaxis(zarr_stack.open_level(out, 0)[:], 0, -1)
                    row = {"engine": f"{kind} {precision}", "halo": halo, "tile": tile, **compare(got, whole)}
                    row["psnr_min_db_vs_fp32_whole"] = compare(got, fp32_whole)["psnr_min_db"]
                    row["identical_by_seam_distance"] = by_seam_distance(got, whole, tile - 2 * halo, be.spec.scale)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    result = {
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
        "commit": git_commit(),
        "date": started,
        "machine": conditions(),
        "load_average_before": load_before,
        "load_average_after": list(load_average() or ()),
        "image": f"{args.size}x{args.size} simulated cytology sample (mfpi-run --make-sample, seed 0)",
        "int8_gate": manifest["accuracy"]["int8"]["min_psnr_db"],
        "int8_graph": quant,
        "reference": f"one whole-image pass reflect-padded by {REF_PAD} px (> {RF_RADIUS}, half the receptive field)",
        "shape_only_control": shape_control,
        "whole_vs_fp32_whole": whole_vs_fp32,
        "rows": rows,
    }
    m = result["machine"]
    lines = [
        "# INT8 tile seams: cause",
        "",
        f"Measured {started} with `{result['command']}` at commit {result['commit']}.",
        f"Machine: {m['cpu']} ({m['cpu_id']}), {'/'.join(m['cpu_features'])}, {m['logical_cores']} logical CPUs; "
        f"load average before {load_before}, after {result['load_average_after']}.",
        "",
        f"Image: {result['image']}. Bundled model, int8 gate {result['int8_gate']} dB (export gate tiles 64 px).",
        f"INT8 graph: {quant['quantize_linear']} QuantizeLinear nodes, scales and zero points constants: "
        f"{quant['scales_are_constants']}; DynamicQuantizeLinear nodes: {quant['dynamic_quantize_linear']}.",
        "",
        f"## Shape only: whole pass padded {SHAPE_PAD} vs {REF_PAD} px (no output pixel sees a different input)",
        "",
        *comparison_table(shape_control),
        "",
        f"## Whole pass (padded {REF_PAD} px) vs the fp32 whole pass (openvino): the precision's own error",
        "",
        *comparison_table(whole_vs_fp32),
        "",
        f"## Tiled (mfpi-run pipeline, core 288) vs the same engine's whole pass padded {REF_PAD} px",
        "",
        "Identical by distance to the nearest core edge (input px) shows the reach: flips at a seam only, or "
        "anywhere in the core.",
        "",
        "| engine | halo | tile | identical | max diff | lowest plane PSNR | identical by distance to a seam | "
        "tiled vs fp32 whole: lowest plane PSNR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        near = ", ".join(f"{k}: {100 * v:.1f}%" for k, v in r["identical_by_seam_distance"].items())
        lines.append(
            f"| {r['engine']} | {r['halo']} | {r['tile']} | {100 * r['identical']:.2f}% | {r['max_diff']} | "
            f"{r['psnr_min_db']:.1f} dB | {near} | {r['psnr_min_db_vs_fp32_whole']:.1f} dB |"
        )
    write_report(args.out, result, lines)


if __name__ == "__main__":
    main()
