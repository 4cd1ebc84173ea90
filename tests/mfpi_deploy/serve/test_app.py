"""The tile contract over HTTP (in-process ASGI): what the routes answer, that a served tile is
the engine's tiled output for that region (PNG: exact; JPEG: exactly the encoding of those
pixels), that one engine tile serves all 11 planes, and that every refusal is one line."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.serve.mapping import engine_tiles_over, reduce
from mfpi_deploy.serve.render import decode, encode
from mfpi_deploy.tiling import Box
from tests.mfpi_deploy.serve.asgi import get_scope
from tests.mfpi_deploy.serve.conftest import SLIDE_SHAPE, batch_mates, client, make_server


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert body.startswith("error: ") and body.endswith("\n") and body.count("\n") == 1, body
    assert "Traceback" not in body
    return body


def test_slides_stats_page_and_descriptors(live) -> None:
    c = client(live)
    slides = c.get("/slides").json()["slides"]
    h, w = SLIDE_SHAPE
    assert slides == [
        {
            "name": "cells",
            "kind": "live",
            "width": 2 * w,
            "height": 2 * h,
            "planes": 11,
            "planes_um": [-13.5, -10.8, -8.1, -5.4, -2.7, 0.0, 2.7, 5.4, 8.1, 10.8, 13.5],
            "z_unit": "µm",
            "pixel_size_um": 0.25,
            "scale": 2,
            "has_input": True,
            "input_width": w,
            "input_height": h,
            "tile": 256,
        }
    ]
    size = ET.fromstring(c.get("/slides/cells/4.dzi").text)[0].attrib
    assert size == {"Width": str(2 * w), "Height": str(2 * h)}
    size = ET.fromstring(c.get("/slides/cells/input.dzi").text)[0].attrib
    assert size == {"Width": str(w), "Height": str(h)}
    assert ET.fromstring(c.get("/slides/cells/0.dzi?format=png").text).attrib["Format"] == "png"
    stats = c.get("/stats").json()
    assert stats["engine_tiles_computed"] == 0 and stats["cache_hits"] == 0
    page = c.get("/")
    assert page.status_code == 200 and "openseadragon" in page.text.lower()
    js = c.get("/static/openseadragon/openseadragon.min.js")
    assert js.status_code == 200 and js.text.startswith("//! openseadragon")
    assert c.get("/static/openseadragon/LICENSE.txt").status_code == 200


def test_full_resolution_tiles_equal_the_tiled_inference_output(live, reference: np.ndarray) -> None:
    c = client(live)
    level = live.slides["cells"].geometry.max_level
    for plane in (0, 5, 10):
        for col, row in [(0, 0), (1, 1), (2, 2), (1, 0)]:  # inside one engine tile, and across the seams
            png = c.get(f"/slides/cells/{plane}_files/{level}/{col}_{row}.png")
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
            want = reference[plane, 256 * row : 256 * (row + 1), 256 * col : 256 * (col + 1)]
            assert np.array_equal(decode(png.content), want)
            jpeg = c.get(f"/slides/cells/{plane}_files/{level}/{col}_{row}.jpeg")
            assert jpeg.headers["content-type"] == "image/jpeg"
            assert np.array_equal(decode(jpeg.content), decode(encode(want, "jpeg", 90)))
    live_planes = live.slides["cells"].live
    needed = [
        i
        for col, row in [(0, 0), (1, 1), (2, 2), (1, 0)]
        for i in engine_tiles_over(live_planes.plan, 2, Box(256 * row, 256 * col, 256 * row + 256, 256 * col + 256))
    ]
    assert live.queue.wait_idle(10)  # a request is answered before its batch-mates are counted
    stats = c.get("/stats").json()  # each engine tile once, with its batch-mates of mfpi-run's plan
    assert stats["engine_tiles_computed"] == len(batch_mates(live, "cells", needed)) == stats["cache_entries"]


def test_one_engine_tile_serves_all_planes(live) -> None:
    c = client(live)
    level = live.slides["cells"].geometry.max_level
    for plane in range(11):
        assert c.get(f"/slides/cells/{plane}_files/{level}/0_0.png").status_code == 200
    assert live.queue.wait_idle(10)
    stats = c.get("/stats").json()
    assert stats["engine_tiles_computed"] == len(batch_mates(live, "cells", [0])) and stats["cache_hits"] == 10


def test_lower_levels_from_computed_tiles_else_from_the_input(live, reference, slide_image) -> None:
    c = client(live)
    g = live.slides["cells"].geometry
    half = c.get(f"/slides/cells/3_files/{g.max_level - 1}/0_0.png")  # computed on request (input resolution)
    assert np.array_equal(decode(half.content), reduce(reference[3:4], 2)[0, :256, :256])
    computed = c.get("/stats").json()["engine_tiles_computed"]
    assert 0 < computed < live.slides["cells"].live.plan.n_tiles
    quarter = f"/slides/cells/3_files/{g.max_level - 2}/0_0.png"
    before = c.get(quarter)  # below the computed levels and not all computed: the input, at that size
    assert np.array_equal(decode(before.content), reduce(slide_image[None], 2)[0])
    assert c.get("/stats").json()["engine_tiles_computed"] == computed  # asked nothing of the engine
    rows, cols = g.grid(g.max_level)
    for row in range(rows):
        for col in range(cols):
            c.get(f"/slides/cells/3_files/{g.max_level}/{col}_{row}.png")
    after = c.get(quarter)  # every engine tile under it is computed now: the refocused plane, reduced
    assert np.array_equal(decode(after.content), reduce(reference[3:4], 4)[0])


def test_full_resolution_is_computed_however_many_engine_tiles_a_tile_needs(
    live, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap on engine tiles per request is for coarser levels: small engine tiles (mfpi-serve
    --tile 112) put dozens under one full-resolution tile, which must still show the planes (it
    fell back to the input there and failed with a 500)."""
    monkeypatch.setattr("mfpi_deploy.serve.views.MAX_TILES_PER_REQUEST", 0)  # every tile needs more than that
    level = live.slides["cells"].geometry.max_level
    png = client(live).get(f"/slides/cells/4_files/{level}/1_1.png")
    assert png.status_code == 200, png.text
    assert np.array_equal(decode(png.content), reference[4, 256:512, 256:512])


def test_input_tiles_are_the_slide(live, slide_image) -> None:
    c = client(live)
    g = live.slides["cells"].input_geometry
    tile = decode(c.get(f"/slides/cells/input_files/{g.max_level}/1_0.png").content)
    assert np.array_equal(tile, slide_image[:256, 256:])
    low = decode(c.get(f"/slides/cells/input_files/{g.max_level - 1}/0_0.png").content)
    assert np.array_equal(low, reduce(slide_image[None], 2)[0])


def test_sharpest_plane_uses_the_focus_measure(live, reference) -> None:
    from mfpi_deploy.slide.focus import sharpest_plane

    got = client(live).get("/slides/cells/sharpest?x=0&y=0&w=680&h=600").json()
    want = sharpest_plane(list(reference))
    planes_um = [-13.5, -10.8, -8.1, -5.4, -2.7, 0.0, 2.7, 5.4, 8.1, 10.8, 13.5]
    assert got == {"plane": want, "z_um": planes_um[want], "z_unit": "µm"}


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/slides/other/3.dzi", 404, "no slide named 'other'"),
        ("/slides/cells/11.dzi", 404, "plane 11 does not exist"),
        ("/slides/cells/11_files/10/0_0.png", 404, "plane 11 does not exist"),
        ("/slides/cells/3.xml", 400, "is not PLANE.dzi"),
        ("/slides/cells/3.dzi?format=gif", 400, "format 'gif'"),
        ("/slides/cells/3_files/99/0_0.png", 404, "level 99 does not exist"),
        ("/slides/cells/3_files/-1/0_0.png", 400, "level '-1' is not a level (a whole number from 0)"),
        ("/slides/cells/3_files/10/7_0.png", 404, "tile 7_0 does not exist at level 10"),
        ("/slides/cells/3_files/10/0_0.gif", 400, "is not COL_ROW.jpeg or COL_ROW.png"),
        ("/slides/cells/3_files/10/a_b.png", 400, "is not COL_ROW"),
        ("/slides/cells/3_files/10/99999999_0.png", 400, "is not COL_ROW"),
        ("/slides/cells/three_files/10/0_0.png", 400, "is not PLANE_files"),
        ("/slides/cells/sharpest?x=1", 400, "sharpest needs x, y, w, h"),
        ("/slides/cells/sharpest?x=1_0&y=0&w=64&h=64", 400, "sharpest needs x, y, w, h"),  # Python's int() took it
        ("/slides/cells/sharpest?x=%D9%A1&y=0&w=64&h=64", 400, "sharpest needs x, y, w, h"),  # an Arabic-Indic 1
        ("/slides/" + "n" * 5000 + "/3.dzi", 404, "no slide named 'nnn"),
        ("/slides/cells/sharpest?x=0&y=0&w=2&h=40", 400, "too small to measure focus on"),
        ("/slides/cells/sharpest?x=-5&y=0&w=7&h=40", 400, "too small to measure focus on"),  # 2 px on the slide
        ("/nothing/here", 404, "no such page"),
        ("/static/missing.js", 404, "no such page"),
    ],
)
def test_bad_requests_are_one_line_4xx(live, path: str, status: int, reason: str) -> None:
    body = one_line_error(client(live).get(path), status)
    assert reason in body and len(body) <= 320  # a long name is not echoed back whole


@pytest.mark.parametrize(
    "raw",
    [
        b"/slides/..%2f..%2fetc/passwd",
        b"/slides/%2e%2e/3.dzi",
        b"/static/..%2f..%2fsetup.cfg",
        b"/static/%2E%2E/%2E%2E/setup.cfg",
        b"/slides/cells/..\\..\\x.dzi",
        b"//etc/passwd",
        b"/slides/cells/3_files/10/0_0.png%00",
    ],
)
def test_traversal_is_refused_before_any_route(live, raw: bytes) -> None:
    import asyncio

    from mfpi_deploy.serve.app import create_app

    app = create_app(live)
    sent: list[dict] = []

    async def go() -> None:
        scope = get_scope(raw.decode("latin-1").replace("%2f", "/").replace("%2e", "."), raw)

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(go())
    assert sent[0]["status"] == 400
    assert b"path refused" in sent[1]["body"]


def test_writes_and_foreign_hosts_are_refused(live) -> None:
    c = client(live)
    one_line_error(c.post("/slides"), 405)
    one_line_error(c.delete("/slides/cells/3.dzi"), 405)
    body = one_line_error(c.get("/slides", headers={"host": "evil.example:8000"}), 403)
    assert "loopback names only" in body
    assert c.get("/slides", headers={"host": "localhost:8000"}).status_code == 200


def test_a_token_is_checked_on_every_request(slide_path: Path, backend) -> None:
    secret = "s3cret-token-0123456789"
    server = make_server([slide_path], backend, host="0.0.0.0", token=secret)
    try:
        c = client(server, base_url="http://192.0.2.10:8000")
        for path in ("/", "/slides", "/stats", "/slides/cells/3.dzi", "/static/openseadragon/LICENSE.txt"):
            assert "missing or wrong token" in one_line_error(c.get(path), 403)
        one_line_error(c.get("/slides", headers={"authorization": "Bearer wrong-token-0123456789"}), 403)
        one_line_error(c.get("/slides?token=nope"), 403)
        assert c.get("/slides", headers={"authorization": f"Bearer {secret}"}).status_code == 200
        page = c.get(f"/?token={secret}")
        assert page.status_code == 200 and "mfpi_token" in page.headers["set-cookie"]
        assert "HttpOnly" in page.headers["set-cookie"]
        assert c.get("/slides/cells/3.dzi").status_code == 200  # the cookie carries it from here
    finally:
        server.close()


def test_a_z_stack_is_served_from_the_plane_asked_for(tmp_path: Path, backend) -> None:
    from mfpi_deploy.errors import MfpiError
    from mfpi_deploy.infer import predict_image
    from tests.mfpi_deploy.run.helpers import focal_stack, write_zstack

    stack = focal_stack(160, 176, planes=5, sharp=3)
    path = write_zstack(tmp_path / "stack.ome.tif", stack)
    with pytest.raises(MfpiError, match="--plane"):  # as mfpi-run: a Z-stack needs its plane named
        make_server([path], backend)
    for choice, plane in ((1, 1), ("sharpest", 3)):
        server = make_server([path], backend, plane=choice)
        try:
            c = client(server)
            g = server.slides["stack"].input_geometry
            shown = decode(c.get(f"/slides/stack/input_files/{g.max_level}/0_0.png").content)
            assert np.array_equal(shown, stack[plane])
            level = server.slides["stack"].geometry.max_level
            refocused = decode(c.get(f"/slides/stack/7_files/{level}/0_0.png").content)
            assert np.array_equal(refocused, predict_image(stack[plane], backend)[7, :256, :256])
        finally:
            server.close()
