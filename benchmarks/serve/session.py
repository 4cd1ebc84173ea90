"""A scripted viewer session against `mfpi-serve` (the issue's done-when protocol, over HTTP):
a 1600x900 viewport, zoom to full resolution at 3 places of the slide, focus through all 11
planes at each, then pan one screen; the tiles a viewer would ask for, 6 at a time (a
browser's connections per host). Records the first full-resolution viewport, every focus step,
the pan, the whole session, the server's stats (engine tiles computed, cache hits, RSS) and the
machine's conditions.

It asks only for the full-resolution tiles of each view, as a viewer that jumps there would. A
browser zooming in also fetches coarser levels on the way (the input, or at half resolution the
same engine tiles), and shares the machine's cores: `browser_zoom.py` times that in Chromium.

    python benchmarks/serve/session.py SLIDE [--backend auto] [--engine DIR] [--tile N] [--out NAME]
    mfpi-run --make-sample sample4096.tif --sample-size 4096   # the issue's 4096^2 sample slide
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from mfpi_deploy.bench.machine import describe_machine
from mfpi_deploy.gitinfo import git_commit
from mfpi_deploy.machine import conditions

RESULTS = Path(__file__).resolve().parent / "results"
VIEW_W, VIEW_H = 1600, 900
CONNECTIONS = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def visible_tiles(x0: int, y0: int, level: int, tile: int, width: int, height: int) -> list[tuple[int, int]]:
    """(col, row) of the DZI tiles a VIEW_W x VIEW_H viewport at (x0, y0) of the full level shows."""
    c0, r0 = max(0, x0 // tile), max(0, y0 // tile)
    c1 = min(math.ceil(width / tile), math.ceil((x0 + VIEW_W) / tile))
    r1 = min(math.ceil(height / tile), math.ceil((y0 + VIEW_H) / tile))
    return [(c, r) for r in range(r0, r1) for c in range(c0, c1)]


def fetch_all(client: httpx.Client, urls: list[str]) -> tuple[float, list[float]]:
    """Wall time of fetching `urls` over CONNECTIONS connections, and each request's latency."""

    def one(url: str) -> float:
        t = time.perf_counter()
        r = client.get(url)
        if r.status_code != 200:
            raise SystemExit(f"{url}: {r.status_code} {r.text.strip()}")
        return time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        latencies = list(pool.map(one, urls))
    return time.perf_counter() - t0, latencies


def add_server_options(ap: argparse.ArgumentParser) -> None:
    """The slide and the `mfpi-serve` options a benchmark passes on (also `browser_zoom.py`'s)."""
    ap.add_argument("slide", type=Path)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--engine")
    ap.add_argument("--tile", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--cache-mb", type=float, default=2048)


def start_server(args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str, list[str]]:
    """`mfpi-serve` on a free port with those options, its stderr to `log`: (process, base URL,
    command) once it answers /slides; SystemExit with its log if it stops or takes 15 minutes."""
    port = free_port()
    cmd = [sys.executable, "-m", "mfpi_deploy.cli.serve", str(args.slide), "--port", str(port), "--quiet"]
    cmd += ["--backend", args.backend, "--cache-mb", str(args.cache_mb)]
    cmd += ["--engine", args.engine] if args.engine else []
    cmd += ["--tile", str(args.tile)] if args.tile else []
    cmd += ["--batch", str(args.batch)] if args.batch else []
    server = subprocess.Popen(cmd, stderr=log.open("w"), text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while True:
        try:
            httpx.get(base + "/slides", timeout=5).raise_for_status()
            return server, base, cmd
        except httpx.HTTPError:
            if server.poll() is not None:
                raise SystemExit(log.read_text()) from None
            if time.monotonic() > deadline:
                server.terminate()
                raise SystemExit("the server did not start in 15 minutes") from None
            time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_options(ap)
    ap.add_argument("--out", default="session")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the results (default: beside this script)")
    args = ap.parse_args()
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    server_log = results / f"{args.out}.server.log"
    started = time.perf_counter()
    server, base, cmd = start_server(args, server_log)
    startup = time.perf_counter() - started
    log: list[str] = []
    try:
        client = httpx.Client(base_url=base, timeout=600, limits=httpx.Limits(max_connections=CONNECTIONS))
        slides = client.get("/slides").json()["slides"]
        slide = slides[0]
        name, width, height, tile = slide["name"], slide["width"], slide["height"], slide["tile"]
        level = math.ceil(math.log2(max(width, height)))
        places = [
            (int(width * fx) - VIEW_W // 2, int(height * fy) - VIEW_H // 2)
            for fx, fy in ((0.3, 0.3), (0.5, 0.6), (0.75, 0.4))
        ]
        places = [(max(0, min(width - VIEW_W, x)), max(0, min(height - VIEW_H, y))) for x, y in places]
        planes = slide["planes"]
        middle = planes // 2
        report: dict = {"slide": str(args.slide), "size": [width, height], "startup_s": startup, "places": []}
        session0 = time.perf_counter()
        rss_max = 0
        for x, y in places:
            tiles = visible_tiles(x, y, level, tile, width, height)
            urls = lambda z, ts=tiles: [f"/slides/{name}/{z}_files/{level}/{c}_{r}.jpeg" for c, r in ts]  # noqa: E731
            before = client.get("/stats").json()
            first, _ = fetch_all(client, urls(middle))
            after = client.get("/stats").json()
            first_tiles = after["engine_tiles_computed"] - before["engine_tiles_computed"]
            first_engine_s = after.get("compute_seconds", 0.0) - before.get("compute_seconds", 0.0)
            steps = []
            for z in list(range(middle + 1, planes)) + list(range(middle - 1, -1, -1)):
                wall, lat = fetch_all(client, urls(z))
                steps.append({"plane": z, "wall_s": wall, "max_request_s": max(lat)})
            pan_tiles = visible_tiles(min(width - VIEW_W, x + VIEW_W), y, level, tile, width, height)
            pan, _ = fetch_all(client, [f"/slides/{name}/{middle}_files/{level}/{c}_{r}.jpeg" for c, r in pan_tiles])
            stats = client.get("/stats").json()
            rss_max = max(rss_max, stats.get("rss_bytes") or 0)
            report["places"].append(
                {
                    "at": [x, y],
                    "tiles": len(tiles),
                    "first_viewport_s": first,
                    "first_viewport_engine_tiles": first_tiles,
                    "first_viewport_engine_s": first_engine_s,
                    "focus_steps": steps,
                    "pan_s": pan,
                }
            )
            log.append(
                f"place {x},{y}: first viewport {first:.2f} s ({len(tiles)} tiles; {first_tiles} engine tiles computed "
                f"in {first_engine_s:.2f} s of engine work); focus steps max "
                f"{max(s['wall_s'] for s in steps) * 1000:.0f} ms wall, slowest request "
                f"{max(s['max_request_s'] for s in steps) * 1000:.0f} ms; pan {pan:.2f} s"
            )
        report["session_s"] = time.perf_counter() - session0
        stats = client.get("/stats").json()
        report["stats"] = stats
        report["server_rss_max_mb"] = max(rss_max, stats.get("rss_bytes") or 0) / 2**20
        report["conditions"] = {
            **conditions(),
            "commit": git_commit(short=True),
            "python": platform.python_version(),
            "command": " ".join(cmd[1:]),
            "server_log": server_log.read_text().splitlines()[:3],
        }
    finally:
        server.terminate()
        server.wait(30)
    (results / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    s = report["stats"]
    lines = [
        f"# mfpi-serve scripted session: {args.slide.name}",
        "",
        f"`python benchmarks/serve/session.py {' '.join(sys.argv[1:])}` at commit {report['conditions']['commit']}; "
        f"{describe_machine().one_line()}; load average at the end "
        f"{', '.join(map(str, report['conditions']['load_average']))}; server start (engine open and plan) "
        f"{startup:.1f} s.",
        "",
        *[f"- {line}" for line in log],
        f"- whole session {report['session_s']:.1f} s; engine tiles computed {s['engine_tiles_computed']} "
        f"({s.get('compute_seconds', 0.0) / max(1, s['engine_tiles_computed']):.2f} s of engine work each; "
        f"computed again after eviction {s.get('engine_tiles_recomputed', 'not counted')}), cache hits "
        f"{s['cache_hits']}, coalesced {s['coalesced']}, evictions {s['cache_evictions']}; server RSS max "
        f"{report['server_rss_max_mb']:.0f} MB (cache bound {args.cache_mb:.0f} MB)",
        "",
    ]
    (results / f"{args.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
