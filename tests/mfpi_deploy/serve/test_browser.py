"""The viewer page in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, through Selenium) loads the page from a running server, the focus moves with
the keyboard, the view pans, and the screenshots are compared with the engine's tiled output.

Criterion: tiles are PNG (lossless) and shown at one screen pixel per image pixel with
smoothing off (canvas drawer), so the shown pixels are the planes' values, except that the
canvas places some tiles a sub-pixel off, which moves them by one pixel (measured: 40-60% of
values then differ on the tiny model's pixel-scale texture). So screen and plane are compared
as 2x2 block means: the 99th percentile of their difference must be at most 1 grey level,
while the same measure against another plane is many levels (9 on average here).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WIDTH = 800  # window and viewer width: screen pixels = full-resolution pixels at the view the page opens with


def _missing() -> str | None:
    if CHROMIUM is None or DRIVER is None:
        return "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"needs {exc.name} (pip install selenium uvicorn)"
    return None


@contextlib.contextmanager
def serving(server) -> Iterator[str]:
    """`server`'s app on a free loopback port (uvicorn in a thread): its base URL; closes the server after."""
    import uvicorn

    from mfpi_deploy.serve.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(server), log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(10)
        server.close()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory, backend):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from mfpi_deploy.infer import predict_image
    from tests.mfpi_deploy.run.helpers import textured, write_tiff
    from tests.mfpi_deploy.serve.conftest import make_server

    image = textured(300, 600, seed=5)
    slide = write_tiff(tmp_path_factory.mktemp("browser") / "wide.tif", image, pixel_size_um=0.5)
    server = make_server([slide], backend)
    with serving(server) as url:
        yield url, predict_image(image, backend), server


@pytest.fixture(scope="module")
def browser(page_server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--force-device-scale-factor=1",
        "--force-color-profile=srgb",
        f"--window-size={WIDTH},700",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_loaded(driver, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script("return document.body.dataset.loaded") == "1":
            return
        time.sleep(0.1)
    raise AssertionError("the page did not finish loading its tiles")


def shown(driver) -> np.ndarray:
    """The viewer's pixels (RGB), cut from a screenshot of the page."""
    from PIL import Image

    rect = driver.execute_script("return document.getElementById('left').getBoundingClientRect().toJSON()")
    shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
    top, left = round(rect["top"]), round(rect["left"])
    return shot[top : top + round(rect["height"]), left : left + round(rect["width"])]


def block_error(screen: np.ndarray, plane: np.ndarray, x0: int) -> float:
    """99th percentile of |screen - plane| over 2x2 block means, for a view whose left edge is
    full-resolution x0 (the bands of the zoom buttons, scale bar and navigator left out)."""
    top = 48
    h = (min(screen.shape[0], plane.shape[0]) - 2 * top) // 2 * 2
    w = (min(screen.shape[1], plane.shape[1] - x0) - 200) // 2 * 2

    def means(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64).reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))

    return float(np.percentile(np.abs(means(screen[top : top + h, :w]) - means(plane[top : top + h, x0 : x0 + w])), 99))


def settled(driver, plane: np.ndarray, x0: int, timeout: float = 60.0) -> tuple[np.ndarray, float]:
    """The screen once the page says its tiles are loaded and it shows `plane` (or the last screen and its
    error at the timeout): the loaded flag can rise for an intermediate plane while keys are still
    being handled, so the screen is compared until it settles."""
    wait_loaded(driver, timeout)
    deadline = time.monotonic() + timeout
    while True:
        screen = shown(driver)
        error = block_error(screen, plane, x0)
        if error <= 1.0 or time.monotonic() > deadline:
            return screen, error
        time.sleep(0.25)


def test_page_focus_and_pan_show_the_engines_planes(page_server, browser) -> None:
    url, reference, server = page_server
    browser.get(f"{url}/?slide=wide&plane=0&mode=refocused&format=png&drawer=canvas&smooth=0&view=0,0,{WIDTH}")
    first, error = settled(browser, reference[0], 0)
    assert browser.find_element("id", "focus-label").text == "plane 0, z = -13.5 µm"
    assert error <= 1.0
    assert block_error(first, reference[10], 0) > 5.0  # the measure tells planes apart

    from selenium.webdriver.common.keys import Keys

    browser.execute_script("document.body.dataset.loaded = '0'")
    body = browser.find_element("tag name", "body")
    for _ in range(10):
        body.send_keys(Keys.PAGE_UP)  # focus up, plane by plane
    assert browser.find_element("id", "focus-label").text == "plane 10, z = +13.5 µm"
    last, error = settled(browser, reference[10], 0)
    assert error <= 1.0
    assert block_error(last, first, 0) > 5.0  # the two planes differ on screen, as in the engine's output

    # pan one third of a screen to the right
    browser.execute_script("document.body.dataset.loaded = '0'")
    browser.execute_script(
        f"const v = window.mfpi.views.left.viewer;v.viewport.panBy(new OpenSeadragon.Point({300 / 1200}, 0), true);"
    )
    assert settled(browser, reference[10], 300)[1] <= 1.0

    # the slider moves focus too, and the sharpest-plane button answers with the focus measure's plane
    browser.execute_script(
        "const s = document.getElementById('focus'); s.value = 4; s.dispatchEvent(new Event('input'));"
    )
    assert browser.find_element("id", "focus-label").text == "plane 4, z = -2.7 µm"
    box = browser.execute_script(
        "const b = window.mfpi.views.left.viewer.viewport.getBounds(true); const W = window.mfpi.state.slide.width;"
        "return [b.x * W, b.y * W, b.width * W, b.height * W].map(Math.round);"
    )
    browser.find_element("id", "sharpest").click()
    deadline = time.monotonic() + 30
    while browser.find_element("id", "sharpest").get_attribute("disabled") and time.monotonic() < deadline:
        time.sleep(0.1)
    x, y = max(0, box[0]), max(0, box[1])
    w, h = min(1200, box[0] + box[2]) - x, min(600, box[1] + box[3]) - y
    with urllib.request.urlopen(f"{url}/slides/wide/sharpest?x={x}&y={y}&w={w}&h={h}") as answer:
        want = json.load(answer)["plane"]
    assert browser.execute_script("return window.mfpi.state.plane") == want
    stats = server.stats()
    assert stats["engine_tiles_recomputed"] == 0 and stats["cache_evictions"] == 0  # nothing computed twice


def test_the_page_draws_with_the_2d_canvas_where_webgl_would_be_software(page_server, browser) -> None:
    """The browser here has no GPU (--disable-gpu): WebGL, where there is any, is drawn on the CPU
    (SwiftShader), which takes the cores the engine needs, so the page picks the 2D canvas; a
    drawer named in the URL is kept."""
    url, _, _ = page_server
    browser.get(f"{url}/?slide=wide&plane=5")
    wait_loaded(browser)
    renderer = browser.execute_script(
        "const gl = document.createElement('canvas').getContext('webgl'); if (!gl) return null;"
        "const i = gl.getExtension('WEBGL_debug_renderer_info');"
        "return i ? gl.getParameter(i.UNMASKED_RENDERER_WEBGL) : '';"
    )
    drawer = browser.execute_script("return window.mfpi.views.left.viewer.drawer.getType()")
    assert drawer == "canvas", f"WebGL renderer {renderer!r}"
    if renderer is not None:  # WebGL exists (in software): asked for by name, it is used
        browser.get(f"{url}/?slide=wide&plane=5&drawer=webgl")
        wait_loaded(browser)
        assert browser.execute_script("return window.mfpi.views.left.viewer.drawer.getType()") == "webgl"


def test_the_page_draws_at_most_every_100_ms_while_it_waits_for_the_engine(tmp_path, backend, browser) -> None:
    """While the view is still and its tiles are being computed, OpenSeadragon would redraw every
    frame (tiles waiting for a loader slot are queued again each frame); the page draws at most
    every 100 ms then: over a window of T seconds at most 10 T + 2 draws. The same page with
    ?throttle=0 (OpenSeadragon's own pace) draws more than that, so the count can tell them apart."""
    from tests.mfpi_deploy.run.helpers import textured, write_tiff
    from tests.mfpi_deploy.serve.conftest import make_server

    slides = [write_tiff(tmp_path / f"{name}.tif", textured(300, 600, seed=9), pixel_size_um=0.5) for name in "ab"]
    server = make_server(slides, backend)
    compute = server.queue.compute

    def slow(group, items):  # an engine that takes its time (12 tiles, 4 a call): the view waits 3 s or more
        time.sleep(1.0)
        return compute(group, items)

    server.queue.compute = slow
    window = 1.5
    draws = {}
    with serving(server) as url:
        for name, extra in (("a", ""), ("b", "&throttle=0")):  # a slide each: nothing computed yet for either
            browser.get(f"{url}/?slide={name}&plane=5&drawer=canvas&view=0,0,{WIDTH}{extra}")
            deadline = time.monotonic() + 30
            while not browser.execute_script("return !!(window.mfpi && window.mfpi.views.left.ready)"):
                assert time.monotonic() < deadline, "the page did not open"
                time.sleep(0.05)
            browser.execute_script(
                "window.draws = 0; window.mfpi.views.left.viewer.addHandler('update-viewport', () => window.draws++);"
            )
            time.sleep(window)
            draws[name] = browser.execute_script("return window.draws")
            assert browser.execute_script("return document.body.dataset.loaded") == "0", "tiles came too soon"
    assert draws["a"] <= 10 * window + 2, draws
    assert draws["b"] > 10 * window + 2, draws
