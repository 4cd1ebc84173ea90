"""Scaling of mfpi-run on this machine: 1 worker x 2 threads (today's in-process pipeline) against
2 Dask workers x 1 thread, on a cohort of 4 slides and on one big slide; throughput and
efficiency against the bare engine; peak memory per worker for a small and a big slide; the
measured per-tile costs (read, engine, write) and, from them, the expected throughput of N GPU
workers with the bound each stage sets.

    python benchmarks/scale/scale.py                       # 4 x 1024^2 cohort, one 4096^2 slide
    python benchmarks/scale/scale.py --quick               # 4 x 512^2, one 1024^2 (a check of the script)
    python benchmarks/scale/scale.py --big 2048            # a smaller big slide (a quarter of the time)

Every configuration runs in a fresh process (and a fresh Dask cluster), so peak RSS is that of
the configuration alone. The load average (other jobs on a shared machine) is sampled during
each run and recorded with its figures. Needs the `dask` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mfpi_deploy.machine import cpu_details  # noqa: E402

RESULTS = ROOT / "benchmarks" / "scale" / "results"
# MFPINet (width 64) on an RTX 2080 Ti, 384x384 -> 11 x 768x768 RGB (paper, Table III)
PAPER_GPU_MS_384 = 27.8
WIDTH_FACTOR = 4.0  # the bundled model has width 32: about 4x fewer FLOPs than width 64 (README)


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a measurement runs."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict:
        return {
            "load_min": round(min(self.samples), 2),
            "load_mean": round(float(np.mean(self.samples)), 2),
            "load_max": round(max(self.samples), 2),
        }


def make_slides(folder: Path, small: int, big: int) -> tuple[list[Path], Path, Path]:
    """Slide-like test images from one simulated sample (`mfpi-run --make-sample`, cytology): 4 cohort
    slides (its rotations and flips), one big slide (a mosaic of them) and one small slide; tiled
    zlib TIFFs. Real texture matters: how well the output compresses sets the cost of writing."""
    import tifffile

    from mfpi_deploy.run.sample import make_sample

    base = make_sample(small, seed=0).image
    views = [base, np.rot90(base), base[::-1], np.rot90(base, 3)[:, ::-1]]

    def save(path: Path, image: np.ndarray) -> Path:
        tifffile.imwrite(
            path,
            np.ascontiguousarray(image),
            photometric="rgb",
            tile=(256, 256),
            compression="zlib",
            resolution=(1e4 / 0.486, 1e4 / 0.486),
            resolutionunit="CENTIMETER",
        )
        return path

    cohort = [save(folder / f"cohort{i}.tif", v) for i, v in enumerate(views)]
    n = big // small
    mosaic = np.concatenate([np.concatenate([views[(r + c) % 4] for c in range(n)], axis=1) for r in range(n)])
    return cohort, save(folder / "big.tif", mosaic), save(folder / "small.tif", views[1])


def _peak_rss_mb() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss, it is not carried over from the parent
    across exec, so a worker's figure is its own)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(config: dict) -> dict:
    """One configuration in this (fresh) process: returns times, throughput and peak RSS."""
    from mfpi_deploy.cohort import ClusterOptions, CohortReport, EngineRef, collect_jobs, run_cohort
    from mfpi_deploy.cohort.cluster import open_client
    from mfpi_deploy.run import RunOptions

    quiet = dict(progress=False, log=lambda m: None)
    ref = EngineRef(config["backend"], config["engine"], threads=config["threads"], engine_id="bench")
    options = RunOptions(overwrite=True, tile=config.get("tile"), **quiet)
    out = Path(config["out"])
    slides = [Path(p) for p in config["slides"]]
    result: dict = {}
    with LoadSampler() as load:
        if config["workers"] == 1:  # today's in-process pipeline, one engine with `threads` threads
            start = time.perf_counter()
            if config["kind"] == "cohort":
                jobs = collect_jobs([str(p) for p in slides], folder=out)
                report = CohortReport(out / "report", jobs)
                run_cohort(jobs, ref, options, ClusterOptions(workers=1, threads=config["threads"]), report)
                tiles = sum(r.tiles for r in report.rows)
                assert all(r.status.value == "done" for r in report.rows), report.rows
            else:
                from mfpi_deploy.backends.select import open_backend
                from mfpi_deploy.run import run_slide

                with open_backend(ref.backend, ref.source, threads=ref.threads, log=lambda m: None) as backend:
                    summary = run_slide(slides[0], out / "big.mfp.ome.tif", backend, options)
                tiles = summary.tiles
            result.update(seconds=time.perf_counter() - start, worker_peak_rss_mb=[round(_peak_rss_mb())])
        else:
            cluster = ClusterOptions(workers=config["workers"], threads=config["threads"], dashboard=None)
            opened = time.perf_counter()
            with open_client(cluster, log=lambda m: None) as client:
                client.run(lambda: __import__("mfpi_deploy.cohort.dask_worker"))
                result["cluster_start_seconds"] = round(time.perf_counter() - opened, 1)
                start = time.perf_counter()
                if config["kind"] == "cohort":
                    jobs = collect_jobs([str(p) for p in slides], folder=out)
                    report = CohortReport(out / "report", jobs)
                    run_cohort(jobs, ref, options, cluster, report, client=client)
                    tiles = sum(r.tiles for r in report.rows)
                    assert all(r.status.value == "done" for r in report.rows), report.rows
                else:
                    from mfpi_deploy.cohort import run_slide_distributed

                    summary = run_slide_distributed(
                        slides[0], out / "big.mfp.ome.tif", ref, options, cluster, client=client
                    )
                    tiles = summary.tiles
                result["seconds"] = time.perf_counter() - start
                rss = client.run(_peak_rss_mb)
                result["worker_peak_rss_mb"] = [round(v) for v in rss.values()]
        result["client_peak_rss_mb"] = round(_peak_rss_mb())
    megapixels = sum(_megapixels(p) for p in slides)
    result.update(
        tiles=tiles,
        megapixels=round(megapixels, 2),
        seconds=round(result["seconds"], 1),
        megapixels_per_s=round(megapixels / result["seconds"], 4),
        tiles_per_s=round(tiles / result["seconds"], 4),
        **load.summary(),
    )
    return result


def _megapixels(path: Path) -> float:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        h, w = tif.series[0].shape[:2]
    return h * w / 1e6


def stage_costs(engine: str, backend: str, slide: Path, threads: int, repeats: int) -> dict:
    """Per-tile seconds of each stage, alone, on one thread of this machine: read (decode and cut
    a window with its halo), engine (bare run of one batch), write (core and its pyramid levels encoded
    with the default OME-TIFF codec into the staging folder, synced)."""
    from mfpi_deploy.backends.select import open_backend
    from mfpi_deploy.output.codecs import floor_db, parse_codec
    from mfpi_deploy.output.ome_tiff import TiffTileStore
    from mfpi_deploy.output.pyramid import PyramidBuilder, PyramidGrid, level_shapes, tile_side
    from mfpi_deploy.run.plan import DEFAULT_TIFF_CODEC
    from mfpi_deploy.slide import TileSource, open_slide, pixel_rule
    from mfpi_deploy.tiling import DEFAULT_HALO, choose_plan

    with open_backend(backend, engine, threads=threads, log=lambda m: None) as be, open_slide(slide) as s:
        spec = be.spec
        rule = pixel_rule(s.info.dtype, s.info.samples, spec.channels)
        source = TileSource(s, rule)
        plan, batch = choose_plan(
            source.height, source.width, DEFAULT_HALO, spec.profiles, spec.stride, scale=spec.scale
        )
        tiles = [plan.tile_at(i) for i in range(min(plan.n_tiles, max(repeats, batch)))]
        start = time.perf_counter()
        windows = [source.read(t.window) for t in tiles]
        read = (time.perf_counter() - start) / len(tiles)
        data = np.stack(windows[:batch])
        be.run(data)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            out = be.run(data)
        engine_s = (time.perf_counter() - start) / repeats / batch
        core = spec.scale * plan.core
        grid = PyramidGrid(level_shapes(spec.scale * plan.height, spec.scale * plan.width), core, tile_side(core))
        with tempfile.TemporaryDirectory() as tmp:
            codec = parse_codec(DEFAULT_TIFF_CODEC)
            store = TiffTileStore(Path(tmp) / "tiles", grid, codec, floor_db(None))
            builder = PyramidBuilder(grid, Path(tmp) / "pyramid", store)
            start = time.perf_counter()
            for t in tiles:
                ys, xs = t.crop(plan.halo, spec.scale)
                builder.add_engine_tile(t.row, t.col, out[0][:, ys, xs, :])
            write = (time.perf_counter() - start) / len(tiles)
            written = sum(f.stat().st_size for f in (Path(tmp) / "tiles").rglob("*") if f.is_file())
    return {
        "tile": plan.tile,
        "core": plan.core,
        "batch": batch,
        "threads": threads,
        "read_s": round(read, 4),
        "engine_s": round(engine_s, 3),
        "write_s": round(write, 4),
        "written_mb_per_tile": round(written / len(tiles) / 2**20, 2),
        "core_megapixels": plan.core**2 / 1e6,
    }


def gpu_estimate(costs: dict, cores: int, workers: tuple[int, ...] = (1, 2, 4, 8)) -> list[dict]:
    """Expected tiles/s of N GPU workers from the measured CPU stage costs and an assumed GPU engine time.

    Per worker the stages overlap (reader thread, engine, writer threads), so a worker is bound by
    its slowest stage; all workers share the host's cores for reading and writing.
    """
    gpu_s = PAPER_GPU_MS_384 / 1e3 * (costs["tile"] / 384) ** 2 / WIDTH_FACTOR
    cpu_per_tile = costs["read_s"] + costs["write_s"]
    rows = []
    for n in workers:
        bounds = {
            "engine (GPU)": n / gpu_s,
            "read (1 thread a worker)": n / costs["read_s"],
            "write (2 threads a worker)": n * min(2, cores) / costs["write_s"],
            f"host CPU ({cores} cores, read + write)": cores / cpu_per_tile,
        }
        stage, tiles_s = min(bounds.items(), key=lambda kv: kv[1])
        rows.append(
            {
                "workers": n,
                "gpu_engine_s": round(gpu_s, 4),
                "bounds_tiles_per_s": {k: round(v, 1) for k, v in bounds.items()},
                "expected_tiles_per_s": round(tiles_s, 1),
                "bound": stage,
                "expected_megapixels_per_s": round(tiles_s * costs["core_megapixels"], 1),
            }
        )
    return rows


def bare_engine(engine: str, backend: str, tile: int, batch: int, threads: int, repeats: int) -> float:
    """Tiles per second of the engine alone (random uint8 tiles, after a warm-up call)."""
    from mfpi_deploy.backends.select import open_backend

    with open_backend(backend, engine, threads=threads, log=lambda m: None) as be:
        x = np.random.default_rng(0).integers(0, 256, (batch, tile, tile, be.spec.channels), dtype=np.uint8)
        be.run(x)
        start = time.perf_counter()
        for _ in range(repeats):
            be.run(x)
        return repeats * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small slides: a check that the script runs")
    ap.add_argument("--big", type=int, default=4096, help="side of the one big slide, pixels")
    ap.add_argument("--engine", help="engine folder (default: the bundled model exported for ort-cpu)")
    ap.add_argument("--backend", default="ort-cpu")
    ap.add_argument("--repeats", type=int, default=2, help="engine calls per bare-engine figure")
    ap.add_argument("--out", default=str(RESULTS / "scale"))
    ap.add_argument("--costs-only", action="store_true", help="only the per-tile costs and the GPU-worker estimate")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    from mfpi_deploy.cohort.cluster import cpu_cores
    from mfpi_deploy.export.api import cached_default_engine
    from mfpi_deploy.tiling import DEFAULT_HALO, choose_plan

    engine = args.engine or str(cached_default_engine())
    small, big = (512, 1024) if args.quick else (1024, args.big)
    cores = cpu_cores()
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": cores,
        "cpu": _cpu_name(),
        "engine": engine,
        "backend": args.backend,
        "quick": args.quick,
        "load_at_start": [round(v, 2) for v in os.getloadavg()],
        "runs": [],
    }
    if args.costs_only:
        from mfpi_deploy.bench.machine import describe_machine

        info = describe_machine()
        with tempfile.TemporaryDirectory() as tmp:
            _, big_slide, _ = make_slides(Path(tmp), small, big)
            with LoadSampler() as load:
                costs = stage_costs(engine, args.backend, big_slide, 1, args.repeats)
        result.update(
            stage_costs={**costs, **load.summary()},
            gpu_estimate=gpu_estimate(costs, cores),
            big=big,
            commit=info.source_commit,
            cpu_flags=" ".join(info.cpu_features),
        )
        write_costs(args.out + "-costs", result)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cohort, big_slide, small_slide = make_slides(tmp_path, small, big)
        from mfpi_deploy.backends.select import open_backend

        with open_backend(args.backend, engine, threads=1, log=lambda m: None) as be:
            spec = be.spec
        with LoadSampler() as load:
            costs = stage_costs(engine, args.backend, big_slide, 1, args.repeats)
            bare = {}
            for name, size in (("cohort", small), ("slide", big)):
                plan, batch = choose_plan(size, size, DEFAULT_HALO, spec.profiles, spec.stride, scale=spec.scale)
                bare[name] = {t: bare_engine(engine, args.backend, plan.tile, batch, t, args.repeats) for t in (1, 2)}
        result["stage_costs"] = {**costs, **load.summary()}
        result["bare_engine_tiles_per_s"] = {k: {str(t): round(v, 4) for t, v in d.items()} for k, d in bare.items()}
        configs = [
            ("cohort", cohort, 1, 2),
            ("cohort", cohort, 2, 1),
            ("slide", [big_slide], 1, 2),
            ("slide", [big_slide], 2, 1),
            ("slide-small", [small_slide], 2, 1),
        ]
        # mfpi-run picks the least wasteful tile per slide, and the tile sets the engine's memory: the small
        # slide runs at the big slide's tile, so the memory figures differ by slide size alone
        big_tile = choose_plan(big, big, DEFAULT_HALO, spec.profiles, spec.stride, scale=spec.scale)[0].tile
        result["memory_tile"] = big_tile
        for kind, slides, workers, threads in configs:
            out = tmp_path / f"out-{kind}-{workers}x{threads}"
            out.mkdir()
            config = {
                "kind": "cohort" if kind == "cohort" else "slide",
                "slides": [str(s) for s in slides],
                "workers": workers,
                "threads": threads,
                "engine": engine,
                "backend": args.backend,
                "out": str(out),
                "tile": big_tile if kind == "slide-small" else None,
            }
            print(f"running {kind} {workers}x{threads} ...", file=sys.stderr, flush=True)
            res = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(config)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if res.returncode:
                sys.exit(res.stderr)
            row = {
                "workload": kind,
                "size": small if kind != "slide" else big,
                "workers": workers,
                "threads": threads,
                **json.loads(res.stdout.strip().splitlines()[-1]),
            }
            ref_key = "cohort" if kind == "cohort" else "slide"
            ideal = workers * bare[ref_key][threads] if kind != "slide-small" else None
            if ideal:
                row["ideal_tiles_per_s"] = round(ideal, 4)
                row["efficiency"] = round(row["tiles_per_s"] / ideal, 3)
            result["runs"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    result["gpu_estimate"] = gpu_estimate(costs, cores)
    result["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    write(args.out, result, small, big)


def _cpu_name() -> str:
    return cpu_details().one_line()


def write(out: str, r: dict, small: int, big: int) -> None:
    """OUT.json and OUT.md."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out + ".json").write_text(json.dumps(r, indent=2) + "\n")
    lines = [
        "# Scaling of mfpi-run on Dask",
        "",
        f"{r['cpu']}, {r['cores']} cores, engine `{Path(r['engine']).name}` on {r['backend']} "
        f"(the bundled default model, fp32 ONNX). Measured {r['date']} with `python benchmarks/scale/scale.py"
        f"{' --quick' if r['quick'] else ''}{f' --big {big}' if big != 4096 and not r['quick'] else ''}`. "
        f"The 1-minute load average (on {r['cores']} cores) is given with every figure (at start "
        f"{r['load_at_start'][0]}, at end {r['load_at_end'][0]}); it counts the runs' own processes (a "
        "2-worker cluster runs 2 engines, the client and the writers), so a load above the cores is expected "
        "there. A load above that at the start means other jobs shared the machine and the figures are low.",
        "",
        "## Throughput: 1 worker x 2 threads against 2 workers x 1 thread",
        "",
        f"Cohort: 4 slides of {small}x{small}; slide: one {big}x{big}. 1 worker = today's in-process pipeline; "
        f"2 workers = a Dask LocalCluster (start-up not counted, listed). Efficiency = tiles/s against the "
        f"bare engine of the same layout (1 x bare(2 threads), or 2 x bare(1 thread)), measured alone "
        f"just before: {json.dumps(r['bare_engine_tiles_per_s'])} tiles/s.",
        "",
        "| workload | workers x threads | tiles | wall (s) | MP/s (input) | tiles/s | efficiency vs bare engine "
        "| peak RSS per worker (MB) | client peak RSS (MB) | cluster start (s) | load avg min/mean/max |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["runs"]:
        eff = f"{100 * row['efficiency']:.0f}%" if "efficiency" in row else "-"
        lines.append(
            f"| {row['workload']} ({row['size']}^2) | {row['workers']} x {row['threads']} | {row['tiles']} "
            f"| {row['seconds']} | {row['megapixels_per_s']} | {row['tiles_per_s']} | {eff} "
            f"| {', '.join(str(v) for v in row['worker_peak_rss_mb'])} | {row['client_peak_rss_mb']} "
            f"| {row.get('cluster_start_seconds', '-')} | {row['load_min']}/{row['load_mean']}/{row['load_max']} |"
        )
    by = {(row["workload"], row["workers"]): row for row in r["runs"]}
    if ("slide", 2) in by and ("slide-small", 2) in by:
        a, b = by[("slide-small", 2)], by[("slide", 2)]
        lines += [
            "",
            f"Peak memory per worker, 2 workers, both at {r.get('memory_tile', '?')} px tiles (mfpi-run picks the "
            "least wasteful tile per slide, and the tile sets the engine's memory; a smaller slide left to choose "
            f"takes smaller tiles and less memory): {small}^2 slide {max(a['worker_peak_rss_mb'])} MB, "
            f"{big}^2 slide {max(b['worker_peak_rss_mb'])} MB "
            f"(growth {max(b['worker_peak_rss_mb']) - max(a['worker_peak_rss_mb'])} MB for "
            f"{(big / small) ** 2:.0f}x the pixels). The client, which plans, builds the pyramid and writes "
            f"the OME-TIFF: {a['client_peak_rss_mb']} MB and {b['client_peak_rss_mb']} MB.",
        ]
    lines += costs_lines(r)
    Path(out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def costs_lines(r: dict) -> list[str]:
    """The per-tile costs and the N-GPU-worker estimate, as Markdown lines."""
    c = r["stage_costs"]
    lines = [
        "",
        "## Per-tile costs and N GPU workers (on paper)",
        "",
        f"Measured here, one thread each, {c['tile']} px tiles ({c['core']} px cores, batch {c['batch']}), "
        f"load avg {c['load_mean']}: read {c['read_s']} s (decode the zlib TIFF, cut the window with its halo), "
        f"engine {c['engine_s']} s (ort-cpu), write {c['write_s']} s (the core's 11 planes x 3 channels and their "
        f"pyramid levels encoded with the default OME-TIFF codec into the staging folder, synced; "
        f"{c['written_mb_per_tile']} MB a tile on disk).",
        "",
        f"A GPU worker overlaps the stages (reader thread, engine, 2 writer threads), so it runs at its slowest "
        f"stage; all workers share the host's cores for reading and writing. The GPU engine time is not measured "
        f"here: it is the paper's {PAPER_GPU_MS_384} ms for a 384 px tile of the width-64 network on an RTX 2080 "
        f"Ti, scaled by pixels to {c['tile']} px and divided by {WIDTH_FACTOR:.0f} for the width-32 model "
        f"(an assumption; measure with `mfpi-bench` on the GPU).",
        "",
        "| GPU workers | engine bound | read bound | write bound | host CPU bound | expected tiles/s | bound by "
        "| expected MP/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in r["gpu_estimate"]:
        b = list(g["bounds_tiles_per_s"].values())
        lines.append(
            f"| {g['workers']} | {b[0]} | {b[1]} | {b[2]} | {b[3]} | {g['expected_tiles_per_s']} "
            f"| {g['bound']} | {g['expected_megapixels_per_s']} |"
        )
    lines += [
        "",
        "Beyond these, a single slide's finish (the pyramid levels shared by several tasks, and the OME-TIFF "
        "assembled by copying encoded tiles) runs in the client alone, and a cluster's shared storage must take "
        "the written MB/s.",
    ]
    return lines


def write_costs(out: str, r: dict) -> None:
    """OUT.json and OUT.md of a --costs-only run."""
    Path(out + ".json").write_text(json.dumps(r, indent=2) + "\n")
    lines = [
        "# Per-tile costs of mfpi-run and N GPU workers (on paper)",
        "",
        f"{r['cpu']} ({r['cpu_flags']}), {r['cores']} cores, engine `{Path(r['engine']).name}` on {r['backend']}. "
        f"Measured {r['date']} at commit {r['commit']} with `python benchmarks/scale/scale.py --costs-only "
        f"--big {r['big']}`; load average at start {r['load_at_start']}.",
        *costs_lines(r)[1:],
    ]
    Path(out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
