"""Host path of a slide run: read, encode, write, pyramid and finish, with the engine taken out.

`run_slide` runs the bundled default engine (ort-cpu, as `mfpi-run` with no --engine) wrapped in
a *null engine*: the real engine's output for the first batch of each input shape, returned for
every later batch of that shape (cached as .npy in the work folder, filled by a priming run per
size that is reported apart). The output compresses like real output, but the engine costs nothing, so what is
measured is what the host adds around any engine. Every run is a fresh subprocess (peak RSS is
that run's own). With --real, the real engine also runs end to end, and alone ("bare") over
batches of the same shapes: bare / run = 1.0 means the run is as fast as its engine.

    python benchmarks/run/host.py [--sizes 2048 4096] [--cases ome-tif:default ...] [--real]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_report

from mfpi_deploy.machine import load_average

CASES = ["ome-tif:default", "ome-tif:zlib", "ome-tif:jpeg", "ome-tif:zstd", "ome-zarr:default"]
SUFFIX = {"ome-tif": ".ome.tif", "ome-zarr": ".ome.zarr"}


def open_engine(engine: str = "ort-cpu") -> Any:
    """`BACKEND[:PRECISION][,streams=N][@FOLDER]`: by default the bundled engine on ort-cpu in fp32, found as
    `mfpi-run` does without --engine (a FOLDER from `mfpi-export ... --int8` for the int8 variant);
    `streams=N` sets OpenVINO's streams (what mfpi-run takes when absent)."""
    from mfpi_deploy.backends.select import open_backend
    from mfpi_deploy.cli.run import resolve_engine

    spec, _, folder = engine.partition("@")
    spec, _, streams = spec.partition(",streams=")
    backend, _, precision = spec.partition(":")
    source = folder or resolve_engine(None, backend, log=lambda m: None)
    extra = {"streams": int(streams)} if streams else {}
    return open_backend(backend, source, precision=precision or None, log=lambda m: None, **extra)


def null_engine(real: Any, cache: Path) -> Any:
    """A Backend that runs `real` once per input shape and then returns that output (read-only) again."""
    from mfpi_deploy.backends.base import Backend

    class NullEngine(Backend):  # keeps no host cores (Backend's default), as an infinitely fast device engine
        def __init__(self) -> None:
            self.kind, self.spec = real.kind, real.spec
            self.identity = getattr(real, "identity", None)  # absent before the engine identity moved into the library
            self.outputs: dict[str, np.ndarray] = {}
            self.engine_seconds = 0.0  # spent in the real engine (0 once the cache is primed)

        def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
            key = "x".join(map(str, tiles.shape)) + ("-dpm" if dpm is not None else "")
            path = cache / f"{key}.npy"
            if key not in self.outputs and path.exists():
                self.outputs[key] = np.load(path)
            elif key not in self.outputs:
                start = time.perf_counter()
                self.outputs[key] = np.array(real.run(tiles, dpm))  # a copy: no buffer the engine reuses
                self.engine_seconds += time.perf_counter() - start
                np.save(cache / f".{key}.npy", self.outputs[key])
                os.replace(cache / f".{key}.npy", path)
            self.outputs[key].flags.writeable = False  # the pipeline must not write into it
            return self.outputs[key]

        def describe(self) -> str:
            return f"null engine over {real.describe()}"

        def close(self) -> None:
            real.close()

    return NullEngine()


def reset_peak_rss() -> dict[str, Any]:
    """Start ru_maxrss afresh from the current RSS (Linux: clear_refs 5), so the peak read after the
    run is the run's own, not that of imports and opening the engine; the RSS it starts from."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        rss = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS"))
        return {"rss_at_start_mb": int(rss.split()[1]) / 1024}
    except (OSError, StopIteration):
        return {}  # the peak then includes the start-up


def du(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (.ome.zarr)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def bare_seconds(engine: str, tiles: int, batch: int, tile: int) -> tuple[float, float]:
    """The engine alone over the run's batches (`tiles` tiles of `tile` px in batches of `batch`;
    random uint8 tiles: the engines' cost does not depend on the pixels), on an engine opened
    afresh as the run's was: both then pay the same first-use costs (OpenVINO compiles each batch
    shape when first run, about 0.4 s from its cache, and its first inference is slower), so the
    ratio measures what the host adds, whichever of the two is timed first. The batches go through
    `run_many`, as the run's do: an engine that keeps two in flight does so here too. Returns wall
    and CPU seconds (every thread of the process: user + system)."""
    real = open_engine(engine)
    try:
        rng = np.random.default_rng(0)
        sizes = [batch] * (tiles // batch) + [tiles % batch] * bool(tiles % batch)
        shape = (tile, tile, real.spec.channels)
        inputs = {n: rng.integers(0, 256, (n, *shape), dtype=np.uint8) for n in set(sizes)}
        start, cpu = time.perf_counter(), time.process_time()
        deque(real.run_many(inputs[n] for n in sizes), maxlen=0)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        real.close()


def parse_case(case: str) -> tuple[str, str, int | None]:
    """`FORMAT:COMPRESSION[@TILE]` -> (format, compression, tile or None: the run's own choice)."""
    spec, _, tile = case.partition("@")
    fmt, codec = spec.split(":")
    return fmt, codec, int(tile) if tile else None


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One run in this (fresh) process; the result as a dict (printed as the last line of stdout)."""
    import mfpi_deploy
    from mfpi_deploy.errors import MfpiError
    from mfpi_deploy.run import RunOptions
    from mfpi_deploy.run.pipeline import run_slide

    fmt, codec, tile = parse_case(job["case"])
    res: dict[str, Any] = {"module": mfpi_deploy.__file__}
    lines: list[str] = []
    ticks: list[float] = []
    try:
        options = RunOptions(
            **({} if codec == "default" else {"compression": codec}),
            **({} if tile is None else {"tile": tile}),
            progress=False,
            overwrite=True,
            log=lines.append,
            on_tiles=lambda done, todo: ticks.append(time.perf_counter()) if done else None,
        )
    except (MfpiError, TypeError, ValueError) as exc:
        return {**res, "unsupported": f"options: {exc}"}
    real = open_engine(job.get("engine") or job.get("null_engine") or "ort-cpu")
    backend = real if job["real"] else null_engine(real, Path(job["cache"]))
    out = Path(job["output"])
    if job["real"] and job.get("bare_first"):  # this round times the engine alone first (shapes of round 0)
        res["bare_seconds"], res["bare_cpu_seconds"] = bare_seconds(job.get("engine") or "ort-cpu", **job["bare_first"])
    res |= {"startup_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **reset_peak_rss()}
    start, cpu = time.perf_counter(), time.process_time()
    try:
        summary = run_slide(job["input"], out, backend, options)
    except (MfpiError, ValueError) as exc:
        if ticks:  # tiles were computed: a failure of the run, not an option this version refuses
            raise
        return {**res, "unsupported": f"plan: {exc}", "log": lines}
    end, cpu = time.perf_counter(), time.process_time() - cpu
    res |= {
        "seconds": end - start,
        "cpu_seconds": cpu,
        "cores": os.cpu_count(),
        "after_last_tile_s": end - ticks[-1] if ticks else None,
        "output_bytes": du(out),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tile": summary.tile,
        "batch": summary.batch,
        "tiles": summary.tiles,
        "backend": summary.backend,
        "codec": summary.codec.line() if getattr(summary, "codec", None) else None,
        "engine_seconds": getattr(backend, "engine_seconds", None),
        "log": lines,
    }
    backend.close()
    if job["real"] and not job.get("bare_first"):
        res["bare_seconds"], res["bare_cpu_seconds"] = bare_seconds(
            job.get("engine") or "ort-cpu", summary.tiles, summary.batch, summary.tile
        )
    return res


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """`child(job)` in a fresh interpreter (same one, same environment), with the load around it."""
    before = load_average()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode:
        sys.exit(f"run {job} failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**job, **res, "load_before": before, "load_after": load_average()}


def sample(work: Path, size: int) -> Path:
    """The `mfpi-run --make-sample` slide of this size (seed 0), made once per work folder, in a
    subprocess: a child's ru_maxrss starts from its parent's peak (kept across exec)."""
    path = work / f"sample-{size}.tif"
    if not path.exists():
        make = f"from mfpi_deploy.run.sample import write_sample; write_sample({str(path)!r}, {size}, 0)"
        subprocess.run([sys.executable, "-c", make], check=True, cwd=ROOT)
    return path


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| size | engine | format | compression | wall (s) | input Mpx/s | after last tile (s, share) "
        "| MB per input Mpx | peak RSS in run (MB; at start) | CPU s, run / bare (cores busy) | bare / run "
        "| tile (px; @: given) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fmt, codec, given = parse_case(r["case"])
        head = f"| {r['size']} | {r.get('engine', 'ort-cpu') if r['real'] else 'null'} | {fmt} | {codec} "
        tile = f"{'@' if given else ''}{r.get('tile', given or '')}"
        if "unsupported" in r:
            lines.append(head + f"| not supported by this version ({r['unsupported'][:80]}) |" + " |" * 7)
            continue
        mpx = r["size"] ** 2 / 1e6
        after = r["after_last_tile_s"]
        ratio = f"{r['bare_seconds'] / r['seconds']:.2f}" if "bare_seconds" in r else ""
        if len(r.get("round_ratios", [])) > 1:
            rr = r["round_ratios"]
            ratio += f" (rounds {min(rr):.2f}-{max(rr):.2f}, median {statistics.median(rr):.2f} over {len(rr)})"
        rss = f"{r['peak_rss_mb']:.0f} ({r.get('rss_at_start_mb', float('nan')):.0f})"
        lines.append(
            head + f"| {r['seconds']:.1f} | {mpx / r['seconds']:.2f} | {after:.1f} ({after / r['seconds']:.0%}) "
            f"| {r['output_bytes'] / mpx / 1e6:.2f} | {rss} | {cpu_cell(r)} | {ratio} | {tile} |"
        )
    return lines


def busy(cpu: float, wall: float, cores: int) -> float:
    """Share of the cores' time a process used: its CPU seconds over wall seconds x cores."""
    return cpu / (wall * cores)


def cpu_cell(r: dict[str, Any]) -> str:
    """CPU seconds of the run (and of its bare engine) and how busy they kept the cores."""
    if "cpu_seconds" not in r:  # recorded before CPU time was
        return ""
    cores = r["cores"]
    text = f"{r['cpu_seconds']:.1f}"
    if "bare_cpu_seconds" in r:
        text += f" / {r['bare_cpu_seconds']:.1f}"
        return text + (
            f" ({busy(r['cpu_seconds'], r['seconds'], cores):.0%}"
            f" / {busy(r['bare_cpu_seconds'], r['bare_seconds'], cores):.0%})"
        )
    return text + f" ({busy(r['cpu_seconds'], r['seconds'], cores):.0%})"


def cpu_split(rows: list[dict[str, Any]]) -> list[str]:
    """Each real row's bare / run as (CPU work) x (cores kept busy): bare / run = (bare CPU / run CPU)
    x (run busy / bare busy), so what the host's own work costs is told from idle cores."""
    out = []
    for r in rows:
        if not r["real"] or "bare_cpu_seconds" not in r:
            continue
        work = r["bare_cpu_seconds"] / r["cpu_seconds"]
        idle = busy(r["cpu_seconds"], r["seconds"], r["cores"]) / busy(
            r["bare_cpu_seconds"], r["bare_seconds"], r["cores"]
        )
        out.append(
            f"{r['size']} {r['engine']}: bare / run {r['bare_seconds'] / r['seconds']:.2f} = CPU work "
            f"{work:.2f} (the run's CPU seconds are {1 / work - 1:.0%} more than the bare engine's) x "
            f"cores kept busy {idle:.2f} (the run's share of busy core time over the bare engine's)"
        )
    return ["", *out] if out else []


def merge_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row of an engine's rounds: medians of the run and bare seconds, the first round's sizes
    and memory, and every round's bare / run ratio."""
    row = dict(runs[0])
    if len(runs) > 1 and all("seconds" in r for r in runs):
        row["seconds"] = statistics.median(r["seconds"] for r in runs)
        row["bare_seconds"] = statistics.median(r["bare_seconds"] for r in runs)
        for key in ("cpu_seconds", "bare_cpu_seconds"):
            row[key] = statistics.median(r[key] for r in runs)
        row["after_last_tile_s"] = statistics.median(r["after_last_tile_s"] for r in runs)
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        row["round_ratios"] = [r["bare_seconds"] / r["seconds"] for r in runs]
        row["rounds"] = runs
        row["load_after"] = runs[-1]["load_after"]
    return row


def speedups(rows: list[dict[str, Any]]) -> list[str]:
    """Each real engine against the first one of its size: its speed-up inside the run and bare."""
    out = []
    for size in sorted({r["size"] for r in rows}):
        real = [r for r in rows if r["real"] and r["size"] == size and "seconds" in r]
        for r in real[1:]:
            base = real[0]
            in_run, bare = base["seconds"] / r["seconds"], base["bare_seconds"] / r["bare_seconds"]
            out.append(
                f"{size}: {r['engine']} over {base['engine']}: {in_run:.2f}x in the run, {bare:.2f}x bare "
                f"(the run keeps {in_run / bare:.0%} of the engines' ratio)"
            )
    return ["", *out] if out else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    ap.add_argument(
        "--cases",
        nargs="+",
        default=CASES,
        help="FORMAT:COMPRESSION[@TILE] (COMPRESSION default: do not set it; @TILE: mfpi-run --tile TILE)",
    )
    ap.add_argument("--real", action="store_true", help="also the real engine (ome-tif:default) and bare engine")
    ap.add_argument("--real-sizes", type=int, nargs="+", default=[2048])
    ap.add_argument(
        "--real-engines",
        nargs="+",
        default=["ort-cpu"],
        help="BACKEND[:PRECISION][@FOLDER] for the real runs, e.g. ort-cpu openvino:int8@engines/default-int8",
    )
    ap.add_argument(
        "--null-engine",
        default="ort-cpu",
        help="the engine whose first outputs the null engine replays (default ort-cpu, the bundled model's export; "
        "torch runs the bundled checkpoint with no export)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="real runs per engine, interleaved: engines in turn, order reversed each round, and the bare engine "
        "timed after the run in even rounds, before it in odd ones (medians and the per-round ratios reported)",
    )
    ap.add_argument("--work", type=Path, help="folder for samples, engine-output cache and outputs (default: temp)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/run/results/host"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    from mfpi_deploy.bench.machine import describe_machine
    from mfpi_deploy.gitinfo import git_commit

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        (work / "cache").mkdir(parents=True, exist_ok=True)
        rows, primes = [], []
        for size in args.sizes:
            src = str(sample(work, size))

            def job(case: str, real: bool = False, s: int = size, src: str = src) -> dict[str, Any]:
                fmt = parse_case(case)[0]
                out = work / f"out-{s}-{case.replace(':', '-').replace('@', '-')}{SUFFIX.get(fmt, '.' + fmt)}"
                return {
                    "size": s,
                    "case": case,
                    "real": real,
                    "input": src,
                    "output": str(out),
                    "null_engine": args.null_engine,
                }

            # reported apart: fills the engine-output cache for this size's batch shapes
            primes.append(run_child({**job("ome-tif:default"), "cache": str(work / "cache")}))
            for case in args.cases:
                rows.append(run_child({**job(case), "cache": str(work / "cache")}))
                print(table(rows[-1:])[-1], flush=True)
            if args.real and size in args.real_sizes:
                rounds: dict[str, list[dict[str, Any]]] = {e: [] for e in args.real_engines}
                for r in range(args.rounds):  # engines in turn, order reversed each round; run/bare order alternated
                    for engine in args.real_engines if r % 2 == 0 else args.real_engines[::-1]:
                        first = rounds[engine][0] if rounds[engine] else None
                        shapes = {k: first[k] for k in ("tiles", "batch", "tile")} if first and r % 2 else None
                        rounds[engine].append(
                            run_child({**job("ome-tif:default", real=True), "engine": engine, "bare_first": shapes})
                        )
                for engine in args.real_engines:
                    rows.append(merge_rounds(rounds[engine]))
                    print(table(rows[-1:])[-1], flush=True)
    machine = describe_machine()
    result = {
        "what": "host path of run_slide (null engine: cached real output per batch shape)",
        "null_engine": args.null_engine,
        "commit": git_commit(),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {**machine.__dict__, "one_line": machine.one_line()},
        "rows": rows,
        "priming_runs": primes,
    }
    modules = sorted({r["module"] for r in rows + primes})
    lines = [
        "# Host path of a slide run",
        "",
        f"Commit `{result['commit']}` (mfpi_deploy from {', '.join(modules)}), {result['date']}; "
        f"`{result['command']}`.",
        f"Machine: {result['machine']['one_line']}.",
        "",
        f"Null engine: the default engine's ({result['null_engine']}) output for the first batch of "
        "each shape, returned for "
        "every batch. Each run is a fresh process; input Mpx/s = slide pixels / wall seconds of run_slide; "
        "after last tile = end of run_slide - last on_tiles callback; peak RSS = ru_maxrss at the end, reset "
        "(clear_refs) just before run_slide, with the RSS it started from; bare / run = the real engine alone, opened "
        "afresh as the run's was (both pay its first-use costs), over the run's batch shapes / the real run "
        "(1.0: the run costs no more than its engine); with --rounds N, medians "
        "of N interleaved rounds (engines in turn, order reversed each round; the bare engine timed after the run "
        "in even rounds and before it in odd ones) and, in brackets, each round's own ratio (its run and bare "
        "engine timed back to back, so a slow phase of the machine hits both): their range and median. "
        "CPU s = CPU seconds of the process (every thread, user + system) during run_slide and during the "
        "bare engine; cores busy = CPU s / (wall s x logical cores).",
        "",
        *table(rows),
        *cpu_split(rows),
        "",
        "Priming runs (fill the cache; not in the table): "
        + "; ".join(
            f"{p['size']}: {p['seconds']:.1f} s, {p['engine_seconds']:.1f} s of it in the engine" for p in primes
        ),
        "",
        "Load average (1 min) before -> after each run: "
        + "; ".join(
            f"{r['size']} {r.get('engine', 'ort-cpu') if r['real'] else 'null'} {r['case']}: "
            f"{r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}"
            for r in rows
        ),
    ]
    lines += speedups(rows)
    write_report(args.out, result, lines)


if __name__ == "__main__":
    main()
