"""The first refocused viewport in a real browser: headless Chromium opens `mfpi-serve`'s page on
the whole slide, then zooms to full resolution at the 3 places of `session.py` (one screen pixel
per full-resolution pixel), either animated as a user's zoom is (the viewer asks for the coarser
levels on the way in) or in one jump (what `session.py` times over HTTP). Records, per place, the
seconds until every tile of the view is shown, the engine tiles computed meanwhile and the CPU
seconds of server and browser, with the server's stats and the machine's conditions; a fresh
server (cold cache) for each page variant, mode and round, taken in turn.

    python benchmarks/serve/browser_zoom.py SLIDE [--engine DIR] [--tile N] [--batch N] [--rounds 2]
        [--pages "" drawer=webgl] [--out NAME]

`--pages`: page variants, each more URL parameters of the page ("" is the page as it opens).

Needs Debian's chromium and chromium-driver, and selenium (as the browser tests).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from mfpi_deploy.bench.machine import describe_machine
from mfpi_deploy.gitinfo import git_commit
from mfpi_deploy.machine import conditions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import add_server_options, start_server

RESULTS = Path(__file__).resolve().parent / "results"
PLACES = ((0.3, 0.3), (0.5, 0.6), (0.75, 0.4))  # as session.py: view centres, fractions of the slide
MODES = ("animated", "jump")


def open_browser(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        raise SystemExit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(driver), options=options)


# Settled: the view is where it was sent, the shown image has every tile it needs for it, and
# two animation frames have passed since the move (so "fully loaded" is about the new view).
SETTLED_JS = """
const v = window.mfpi && window.mfpi.views.left;
if (!v || !v.ready || !window.framesSinceMove) return false;
const vp = v.viewer.viewport, item = v.items[v.shown];
const still = Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-6 * vp.getZoom(false);
return still && !!item && item.getFullyLoaded();
"""


MOVED = (
    "window.framesSinceMove = false;"
    "requestAnimationFrame(() => requestAnimationFrame(() => { window.framesSinceMove = true; }));"
)


def move(driver: Any, js: str) -> float:
    """Run `js` (a move of the view or a plane change) and return the seconds until it settled."""
    driver.execute_script(MOVED + js)
    return wait_settled(driver)


def wait_settled(driver: Any, timeout: float = 300.0) -> float:
    """Seconds until the view stops moving and all its tiles are shown."""
    started = time.perf_counter()
    while not driver.execute_script(SETTLED_JS):
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"the view did not settle in {timeout:.0f} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def one_round(args: argparse.Namespace, page: str, mode: str, name: str, results: Path) -> dict:
    server, base, cmd = start_server(args, results / f"{name}.server.log")
    driver = open_browser(args.window[0], args.window[1])
    try:
        slide = httpx.get(base + "/slides").json()["slides"][0]
        query = f"slide={slide['name']}&plane={slide['planes'] // 2}&mode=refocused" + (f"&{page}" if page else "")
        driver.get(f"{base}/?{query}")
        move(driver, "")  # the page's first view
        drawer = driver.execute_script("return window.mfpi.views.left.viewer.drawer.getType()")
        box = driver.execute_script("return document.getElementById('left').getBoundingClientRect().toJSON()")
        cw, ch = round(box["width"]), round(box["height"])
        width, height = slide["width"], slide["height"]
        places = []
        for fx, fy in PLACES:
            x = max(0, min(width - cw, int(width * fx) - cw // 2))
            y = max(0, min(height - ch, int(height * fy) - ch // 2))
            move(driver, "window.mfpi.views.left.viewer.viewport.goHome(true)")
            driver.execute_script(
                "window.draws = 0; if (!window.countingDraws) { window.countingDraws = true;"
                "window.mfpi.views.left.viewer.addHandler('update-viewport', () => window.draws++); }"
            )
            before = httpx.get(base + "/stats").json()
            cpu_before = cpu_seconds(server.pid), cpu_seconds(driver.service.process.pid)
            immediately = "true" if mode == "jump" else "false"
            seconds = move(
                driver,
                f"const W = {width}; window.mfpi.views.left.viewer.viewport.fitBounds("
                f"new OpenSeadragon.Rect({x} / W, {y} / W, {cw} / W, {ch} / W), {immediately});",
            )
            cpu_after = cpu_seconds(server.pid), cpu_seconds(driver.service.process.pid)
            after = httpx.get(base + "/stats").json()
            focus = move(driver, "window.mfpi.setPlane(window.mfpi.state.plane + 1);")  # all cached: no engine
            before_pan = httpx.get(base + "/stats").json()["engine_tiles_computed"]
            pan = move(  # one screen to the right, animated (as a drag and release)
                driver,
                "const vp = window.mfpi.views.left.viewer.viewport;"
                "vp.panBy(new OpenSeadragon.Point(vp.getBounds().width, 0), false);",
            )
            pan_tiles = httpx.get(base + "/stats").json()["engine_tiles_computed"] - before_pan
            move(driver, "window.mfpi.setPlane(window.mfpi.state.plane - 1);")  # back to the middle plane
            places.append(
                {
                    "at": [x, y],
                    "seconds": seconds,
                    "engine_tiles": after["engine_tiles_computed"] - before["engine_tiles_computed"],
                    "engine_s": after.get("compute_seconds", 0.0) - before.get("compute_seconds", 0.0),
                    "dropped": after.get("dropped", 0) - before.get("dropped", 0),
                    "server_cpu_s": cpu_after[0] - cpu_before[0],
                    "browser_cpu_s": cpu_after[1] - cpu_before[1],
                    "draws": driver.execute_script("return window.draws"),
                    "focus_step_s": focus,
                    "pan_s": pan,
                    "pan_engine_tiles": pan_tiles,
                }
            )
        stats = httpx.get(base + "/stats").json()
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)
    return {
        "page": page,
        "mode": mode,
        "name": name,
        "drawer": drawer,
        "view_px": [cw, ch],
        "places": places,
        "stats": stats,
        "command": cmd,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_options(ap)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--window", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"))
    ap.add_argument("--pages", nargs="+", default=[""], help='page variants: URL parameters ("" the default page)')
    ap.add_argument("--out", default="browser-zoom")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    runs = []
    cases = [(page, mode) for page in args.pages for mode in MODES]
    for r in range(args.rounds):
        for page, mode in cases if r % 2 == 0 else reversed(cases):
            tag = f"{page.replace('=', '-').replace('&', '-')}-" if page else ""
            runs.append(one_round(args, page, mode, f"{args.out}-{tag}{mode}-{r + 1}", results))
            print(page or "default", mode, r + 1, [f"{p['seconds']:.2f} s" for p in runs[-1]["places"]], flush=True)
    report = {
        "slide": str(args.slide),
        "runs": runs,
        "conditions": {**conditions(), "commit": git_commit(short=True), "python": platform.python_version()},
        "command": shlex.join(["python", "benchmarks/serve/browser_zoom.py", *sys.argv[1:]]),
    }
    (results / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# First refocused viewport in a browser: {args.slide.name}",
        "",
        f"`{report['command']}` at commit {report['conditions']['commit']}; {describe_machine().one_line()}; "
        f"load average at the end {', '.join(map(str, report['conditions']['load_average']))}. Headless Chromium, "
        f"viewer {runs[0]['view_px'][0]}x{runs[0]['view_px'][1]} px at one screen pixel per full-resolution pixel; "
        "a fresh server (cold cache) per page variant, mode and round, taken in turn. `animated`: OpenSeadragon's "
        "fitBounds from the whole slide, as a zoom in (the viewer asks for coarser levels on the way); `jump`: "
        "the same view at once (what session.py times). Seconds from the move until every tile of the view is "
        "shown; draws: OpenSeadragon's redraws of the view meanwhile. Then at each place: a focus step (the next "
        "plane, all computed) and a pan of one screen to the right (animated), each until all its tiles are shown.",
        "",
        "| page | drawer | mode | round | place | first viewport | engine tiles | CPU s server / browser | draws "
        "| focus step | pan (engine tiles) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for i, p in enumerate(run["places"]):
            lines.append(
                f"| {run['page'] or 'as it opens'} | {run['drawer']} | {run['mode']} | {run['name'].rsplit('-', 1)[1]} "
                f"| {i + 1} | {p['seconds']:.2f} s | {p['engine_tiles']} | {p['server_cpu_s']:.1f} / "
                f"{p['browser_cpu_s']:.1f} | {p['draws']} | {p['focus_step_s'] * 1000:.0f} ms | {p['pan_s']:.2f} s "
                f"({p['pan_engine_tiles']}) |"
            )
    (results / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
