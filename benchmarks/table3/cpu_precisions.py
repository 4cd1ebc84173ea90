"""CPU engines by precision: latency (interleaved rounds), accuracy against fp32, and the slide check.

Builds the engines with mfpi-export's API (--int8 --bf16), then:
1. timing: one 384x384 RGB tile -> 11 planes at 768x768, batch 1, `--threads` threads, every
   CPU engine (torch eager, onnxruntime fp32/int8, OpenVINO fp32/int8/bf16) in turn per round,
   the order reversed every other round (ABC.., ..CBA); median latency and the median of
   per-round ratios (so a busy spell hits all engines of a round alike). Two models: random
   weights at the paper's width 64, and the bundled trained model (width 32).
2. accuracy of the bundled model: its export gates (real + simulated tiles, per runtime),
   and on the sample slide (`mfpi-run --make-sample s.tif --sample-size 512`): each variant
   through `mfpi-run` against the fp32 run, each against the simulator's truth (the model's
   own error), and tiled against one whole-image pass (seams).

    python benchmarks/table3/cpu_precisions.py [--threads 2] [--rounds 5] [--tile 384]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mfpi_deploy.backends.openvino_backend import cpu_capabilities, no_bf16_reason  # noqa: E402
from mfpi_deploy.backends.select import open_backend  # noqa: E402
from mfpi_deploy.checkpoint import ModelCard, save_checkpoint  # noqa: E402
from mfpi_deploy.export.accuracy import psnr_per_plane  # noqa: E402
from mfpi_deploy.export.api import ExportOptions, export_model  # noqa: E402
from mfpi_deploy.infer import whole_image  # noqa: E402
from mfpi_deploy.machine import cpu_details, load_average  # noqa: E402
from mfpi_deploy.models import create_model  # noqa: E402
from mfpi_deploy.output import zarr_stack  # noqa: E402
from mfpi_deploy.run.sample import make_sample, write_sample  # noqa: E402
from mfpi_deploy.timing import interleaved, ratio  # noqa: E402

ENGINES = [
    ("torch", "fp32"),
    ("ort-cpu", "fp32"),
    ("ort-cpu", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
    ("openvino", "bf16"),
]
BASE = ("ort-cpu", "fp32")


def load() -> list[float]:
    return list(load_average() or ())


def cpu_line() -> str:
    return (
        f"{cpu_details().one_line()}, {os.cpu_count()} logical cores; OpenVINO capabilities: "
        f"{', '.join(cpu_capabilities())}"
    )


def build(work: Path, threads: int, tile: int, reuse: bool, log) -> dict[str, Path]:
    """The bundled model with --int8 --bf16, and a random width-64 MFPINet (timing) with --int8 --bf16."""
    engines = {"default-w32": work / "default-w32", "random-w64": work / "random-w64"}
    torch.manual_seed(0)
    ckpt = work / "random-w64-ckpt"
    if not ckpt.exists():
        save_checkpoint(create_model("mfpinet").eval(), ModelCard("mfpinet", {}), ckpt)
    sources = {"default-w32": "default", "random-w64": str(ckpt)}
    for name, folder in engines.items():
        if reuse and (folder / "manifest.json").is_file():
            continue
        start = time.perf_counter()
        export_model(
            sources[name],
            folder,
            ExportOptions(int8=True, bf16=True, tiles=(tile,), threads=threads, force=True),
            log=log,
        )
        log(f"{name}: exported in {time.perf_counter() - start:.0f} s")
    return engines


def time_engines(folder: Path, threads: int, tile: int, rounds: int, image: np.ndarray) -> dict:
    """Interleaved rounds over every engine that opens here; per-engine median and per-round ratios."""
    x = np.ascontiguousarray(image[None, :tile, :tile])
    opened, skipped = {}, {}
    for kind, precision in ENGINES:
        try:
            opened[(kind, precision)] = open_backend(
                kind, folder, threads=threads, precision=precision, log=lambda _: None
            )
        except Exception as exc:
            skipped[f"{kind} {precision}"] = str(exc)
    outputs = {key: b.run(x) for key, b in opened.items()}  # warm-up (compiles the shape)
    loads = [load()]
    keys = list(opened)

    def after_round(r: int, seconds: dict) -> None:
        loads.append(load())
        times = ", ".join(f"{k[0]} {k[1]} {seconds[k][-1]:.3f}s" for k in keys)
        print(f"  round {r + 1}/{rounds}: {times} (load {loads[-1][0]})", flush=True)

    seconds = interleaved(
        {key: (lambda b=b: b.run(x)) for key, b in opened.items()}, rounds, 0, after_round=after_round
    )
    for b in opened.values():
        b.close()
    rows = {}
    for key in keys:
        name = f"{key[0]} {key[1]}"
        vs_ort = ratio(seconds[BASE], seconds[key]) if BASE in seconds else None
        vs_torch = ratio(seconds[("torch", "fp32")], seconds[key]) if ("torch", "fp32") in seconds else None
        rows[name] = {
            "median_s": float(np.median(seconds[key])),
            "seconds": [round(s, 4) for s in seconds[key]],
            "speedup_vs_ort_fp32": vs_ort.median if vs_ort else None,
            "speedup_vs_ort_fp32_range": [vs_ort.low, vs_ort.high] if vs_ort else None,
            "speedup_vs_torch": vs_torch.median if vs_torch else None,
            "psnr_vs_ort_fp32_min_db": (min(psnr_per_plane(outputs[key], outputs[BASE])) if BASE in outputs else None),
        }
    return {"rows": rows, "skipped": skipped, "load_average_per_round": loads}


def gate_figures(folder: Path) -> dict:
    acc = json.loads((folder / "manifest.json").read_text())["accuracy"]
    out = {}
    for precision in ("int8", "bf16"):
        block = acc.get(precision, {})
        out[precision] = {
            "threshold_db": block.get("threshold_db"),
            "method": block.get("method", "openvino and onnxruntime"),
            "fp32_nodes": block.get("fp32_nodes", []),
            "runtimes": {
                rt: {
                    "min_psnr_db": f["min_psnr_db"],
                    "mean_psnr_db": round(float(np.mean(f["psnr_db_real"] + f["psnr_db_simulated"])), 2),
                }
                for rt, f in block.get("runtimes", {}).items()
            },
        }
    return out


def slide_check(folder: Path, threads: int, size: int, work: Path) -> dict:
    """mfpi-run (the command) per variant on the sample slide; against fp32, the truth, and a whole-image pass."""
    slide = work / f"sample-{size}.tif"
    if not slide.exists():
        write_sample(slide, size)
    truth = make_sample(size).truth  # (Z, 2H, 2W, C), what the slide was degraded from
    runs = {}
    for kind, precision in [BASE, ("openvino", "fp32"), ("openvino", "int8"), ("ort-cpu", "int8")]:
        out = work / f"sample-{kind}-{precision}.ome.zarr"
        cmd = [
            sys.executable,
            "-m",
            "mfpi_deploy.cli.run",
            str(slide),
            "-o",
            str(out),
            "--engine",
            str(folder),
            "--backend",
            kind,
            "--precision",
            precision,
            "--threads",
            str(threads),
            "--quiet",
            "--overwrite",
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
        runs[(kind, precision)] = (
            np.moveaxis(zarr_stack.open_level(out, 0)[:], 0, -1),
            time.perf_counter() - start,
            " ".join(["mfpi-run", *cmd[3:]]),
        )
    ref = runs[BASE][0]
    result = {}
    for (kind, precision), (planes, secs, cmd) in runs.items():
        diff = np.abs(planes.astype(int) - ref)
        result[f"{kind} {precision}"] = {
            "command": cmd,
            "seconds": round(secs, 1),
            "psnr_vs_fp32_min_db": min(psnr_per_plane(planes[None], ref[None])),
            "max_diff_vs_fp32": int(diff.max()),
            "identical_vs_fp32": float((diff == 0).mean()),
            "psnr_vs_truth_db": psnr_per_plane(planes[None], truth[None]),
        }
        result[f"{kind} {precision}"]["psnr_vs_truth_mean_db"] = round(
            float(np.mean(result[f"{kind} {precision}"]["psnr_vs_truth_db"])), 3
        )
    # seams: the tiled run against one whole-image pass of the same engine; and what changing only the
    # far padding of the whole-image pass does (int8 rounds far-context changes into 1-level flips)
    image = make_sample(size).image
    for kind, precision in [("openvino", "fp32"), ("openvino", "int8")]:
        with open_backend(kind, folder, threads=threads, precision=precision, log=lambda _: None) as backend:
            whole, far = whole_image(image, backend, 96), whole_image(image, backend, 256)
        tiled = runs[(kind, precision)][0]
        d, c = np.abs(tiled.astype(int) - whole), np.abs(far.astype(int) - whole)
        result[f"{kind} {precision}"]["seams"] = {
            "tiled_vs_whole_identical": float((d == 0).mean()),
            "tiled_vs_whole_max_diff": int(d.max()),
            "tiled_vs_whole_psnr_min_db": min(psnr_per_plane(tiled[None], whole[None])),
            "whole_pad96_vs_pad256_identical": float((c == 0).mean()),
            "whole_pad96_vs_pad256_max_diff": int(c.max()),
        }
    return result


def markdown(result: dict) -> list[str]:
    lines = [
        "# CPU engines by precision: latency, accuracy, slide check",
        "",
        f"Measured {result['date']} with `{result['command']}`.",
        "",
        f"Machine: {result['machine']}. Load average (1 min) before {result['load_before'][0]}, "
        f"after {result['load_after'][0]}; other developers' jobs shared the 2 cores.",
        "",
    ]
    for model, t in result["timing"].items():
        lines += [
            f"## Latency: {model} ({t['what']})",
            "",
            f"One {result['tile']}x{result['tile']} RGB tile -> 11 planes, batch 1, {result['threads']} threads, "
            f"{result['rounds']} interleaved rounds after a warm-up; load average per round "
            f"{min(x[0] for x in t['load_average_per_round'])}-{max(x[0] for x in t['load_average_per_round'])}.",
            "",
            "| engine | median latency | vs onnxruntime fp32 (min-max over rounds) | vs PyTorch eager | "
            "min plane PSNR vs fp32 on this tile |",
            "|---|---|---|---|---|",
        ]
        for name, row in sorted(t["rows"].items(), key=lambda kv: kv[1]["median_s"]):
            rng = row["speedup_vs_ort_fp32_range"]
            lines.append(
                f"| {name} | {row['median_s']:.3f} s | {row['speedup_vs_ort_fp32']:.2f}x "
                f"({rng[0]:.2f}-{rng[1]:.2f}) | {row['speedup_vs_torch']:.2f}x | "
                f"{row['psnr_vs_ort_fp32_min_db']:.1f} dB |"
            )
        for name, why in t["skipped"].items():
            lines.append(f"| {name} | not run: {why} | | | |")
        lines.append("")
    g = result["gates"]
    lines += [
        "## Gates of the bundled model (export: real + simulated tiles, lowest per-plane PSNR vs fp32)",
        "",
        "| variant | runtime | lowest plane PSNR | mean | threshold | how |",
        "|---|---|---|---|---|---|",
    ]
    for precision, block in g.items():
        for rt, f in block["runtimes"].items():
            lines.append(
                f"| {precision} | {rt} | {f['min_psnr_db']:.2f} dB | {f['mean_psnr_db']:.2f} dB | "
                f"{block['threshold_db']} dB | {block['method']} |"
            )
    lines += ["", f"int8 convolutions kept in fp32: {g['int8']['fp32_nodes'] or 'none'}", ""]
    if "slide" not in result:
        return lines
    lines += [
        f"## Sample slide ({result['slide_size']}x{result['slide_size']}, `mfpi-run --make-sample`), "
        f"bundled model through `mfpi-run`",
        "",
        "| variant | min plane PSNR vs fp32 run | max diff | identical | mean PSNR vs truth | "
        "tiled vs whole: identical / max diff | far padding only: identical / max diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["slide"].items():
        seams = r.get("seams")
        s1 = f"{100 * seams['tiled_vs_whole_identical']:.2f}% / {seams['tiled_vs_whole_max_diff']}" if seams else ""
        s2 = (
            f"{100 * seams['whole_pad96_vs_pad256_identical']:.2f}% / {seams['whole_pad96_vs_pad256_max_diff']}"
            if seams
            else ""
        )
        lines.append(
            f"| {name} | {r['psnr_vs_fp32_min_db']:.2f} dB | {r['max_diff_vs_fp32']} | "
            f"{100 * r['identical_vs_fp32']:.1f}% | {r['psnr_vs_truth_mean_db']:.3f} dB | {s1} | {s2} |"
        )
    lines += ["", "Commands of the slide runs:", ""] + [f"    {r['command']}" for r in result["slide"].values()]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tile", type=int, default=384)
    ap.add_argument("--slide-size", type=int, default=512)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mfpi-cpu-precisions"))
    ap.add_argument("--reuse", action="store_true", help="keep engines already exported in --work")
    ap.add_argument("--skip-slide", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/table3/results/cpu-precisions"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python benchmarks/table3/cpu_precisions.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": cpu_line(),
        "bf16": no_bf16_reason() or "yes",
        "threads": args.threads,
        "rounds": args.rounds,
        "tile": args.tile,
        "slide_size": args.slide_size,
        "load_before": load(),
    }
    engines = build(work, args.threads, args.tile, args.reuse, log=lambda m: print(m, flush=True))
    image = make_sample(max(args.tile, 64), seed=3).image
    result["timing"] = {}
    for name, what in (
        ("random-w64", "MFPINet width 64 (the paper's), random weights: timing only"),
        ("default-w32", "bundled trained model, width 32"),
    ):
        print(f"timing {name}", flush=True)
        result["timing"][name] = {
            "what": what,
            **time_engines(engines[name], args.threads, args.tile, args.rounds, image),
        }
    result["gates"] = gate_figures(engines["default-w32"])
    result["gates_random_w64"] = gate_figures(engines["random-w64"])
    if not args.skip_slide:
        print("sample slide", flush=True)
        result["slide"] = slide_check(engines["default-w32"], args.threads, args.slide_size, work)
    result["load_after"] = load()
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = markdown(result)
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
