"""The ASGI application (Starlette): the tile contract, the page, the stats, and the guards.

Routes: `GET /` the viewer page; `GET /slides` (JSON); `GET /slides/NAME/PLANE.dzi`;
`GET /slides/NAME/PLANE_files/LEVEL/COL_ROW.EXT` (PLANE `input` or 0..10, EXT jpeg or png);
`GET /slides/NAME/sharpest?x=&y=&w=&h=` (full-resolution pixels; JSON); `GET /stats` (JSON);
`GET /static/...` the page's files. Guards, on every request before any route: only GET/HEAD;
no `..`, backslash or encoded separators in the path (400); the token when one is set (403);
on a loopback bind, a Host header naming a loopback host (403: no DNS rebinding). Every error
is one line of text (`error: ...`), never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qs, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from mfpi_deploy.checkpoint.card import z_unit
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.serve.cache import Busy
from mfpi_deploy.serve.config import ServeConfig, is_loopback
from mfpi_deploy.serve.dzi import FORMATS
from mfpi_deploy.serve.render import MEDIA_TYPES
from mfpi_deploy.serve.server import ClientGone, NotFound, SlideServer
from mfpi_deploy.tiling import Box

log = logging.getLogger("mfpi.serve")
TOKEN_COOKIE = "mfpi_token"
PLANE = r"(input|[0-9]{1,2})"
DZI_FILE = re.compile(rf"^{PLANE}\.dzi$")
FILES_DIR = re.compile(rf"^{PLANE}_files$")
LEVEL = re.compile(r"^[0-9]{1,2}$")
TILE_FILE = re.compile(r"^([0-9]{1,7})_([0-9]{1,7})\.(jpeg|jpg|png)$")
WHOLE = re.compile(r"-?[0-9]{1,9}")  # a query's whole number, as typed (no 1_0, no other scripts' digits)
MAX_ERROR_CHARS = 300
_BAD_PATH = re.compile(rb"(\.\.|\\|%2e|%2f|%5c|%00|//)", re.IGNORECASE)


_ABSOLUTE = re.compile(rb"^https?://([^/?#]*)(.*)$", re.IGNORECASE)


def origin_form(scope: Scope) -> Scope:
    """A request whose target is in absolute form (`GET http://host:port/path`, which HTTP/1.1
    servers must accept) as the origin-form request it stands for: the path alone, and the
    target's authority as the Host (RFC 9112 3.2.2: it replaces any Host header)."""
    match = _ABSOLUTE.match(scope.get("raw_path") or b"")
    if match is None:
        return scope
    authority, raw = match.group(1), match.group(2) or b"/"
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"host"] + [(b"host", authority)]
    return {**scope, "raw_path": raw, "path": unquote(raw.decode("latin-1")), "headers": headers}


def error(status: int, message: str) -> PlainTextResponse:
    """The one error shape: `error: <one line>` as text."""
    line = " ".join(str(message).split())
    if len(line) > MAX_ERROR_CHARS:  # a request's name echoed back stays short, whatever its length
        line = line[: MAX_ERROR_CHARS - 3] + "..."
    return PlainTextResponse(f"error: {line}\n", status_code=status)


class Guard:
    """Refuses, before any route: methods other than GET/HEAD, suspicious paths, a missing or
    wrong token, and foreign Host headers on a loopback bind."""

    def __init__(self, app: ASGIApp, config: ServeConfig, stopping: Callable[[], bool] = lambda: False) -> None:
        self.app, self.config, self.stopping = app, config, stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._guarded(scope, receive, send)
        except asyncio.CancelledError:
            if self.stopping():  # a forced stop (Ctrl-C twice) cancels requests in flight: no traceback each
                return
            raise

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        scope = origin_form(scope)
        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if self.config.token and query.get("token"):
            # the page was opened with ?token=...: keep it as a cookie for the tiles that follow
            async def send_with_cookie(message: dict) -> None:
                if message["type"] == "http.response.start":
                    cookie = f"{TOKEN_COOKIE}={self.config.token}; Path=/; HttpOnly; SameSite=Strict"
                    message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return error(405, f"method {scope['method']} not allowed: this server only reads")
        raw = scope.get("raw_path") or scope["path"].encode()
        if _BAD_PATH.search(raw) or ".." in scope["path"] or "\\" in scope["path"]:
            return error(400, "path refused: no '..', backslashes or encoded separators")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if is_loopback(self.config.host):
            host = headers.get("host", "")
            hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if not is_loopback(hostname):
                return error(403, f"host {host!r} refused: this server answers loopback names only")
        token = self.config.token
        if token and not self._has_token(scope, headers, token):
            return error(403, "missing or wrong token: open the page as /?token=... or send Authorization: Bearer")
        return None

    @staticmethod
    def _has_token(scope: Scope, headers: dict[str, str], token: str) -> bool:
        given: list[str] = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            pass
        if TOKEN_COOKIE in cookie:
            given.append(cookie[TOKEN_COOKIE].value)
        given += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        return any(hmac.compare_digest(g.encode(), token.encode()) for g in given)


def _errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Every failure of a route as one line: 404 not found, 400 refused, 503 busy, 500 unexpected."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except NotFound as exc:
            return error(404, str(exc))
        except Busy as exc:
            return error(503, str(exc))
        except ClientGone:
            return error(499, "client closed the request")
        except MfpiError as exc:
            return error(400, str(exc))
        except Exception as exc:  # a bug or an I/O failure: one line to the client and the log
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            log.error("mfpi-serve: %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, first)
            return error(500, f"unexpected {type(exc).__name__} while serving this request")

    return wrapped


def create_app(server: SlideServer) -> Starlette:
    """The application over an opened server."""
    config = server.config
    page = resources.files("mfpi_deploy.serve").joinpath("static", "index.html").read_text(encoding="utf-8")

    @_errors
    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @_errors
    async def slides(request: Request) -> Response:
        return JSONResponse({"slides": [s.describe() for s in server.slides.values()], "tile_format": "jpeg"})

    @_errors
    async def stats(request: Request) -> Response:
        return JSONResponse(server.stats(), headers={"Cache-Control": "no-store"})

    @_errors
    async def dzi(request: Request) -> Response:
        name, file = request.path_params["name"], request.path_params["file"]
        slide = server.slide(name)
        found = DZI_FILE.match(file)
        if not found:
            raise MfpiError(f"{file!r} is not PLANE.dzi (PLANE: input or 0..{slide.planes - 1})")
        plane = found.group(1)
        fmt = request.query_params.get("format", "jpeg")
        if fmt not in FORMATS:
            raise MfpiError(f"format {fmt!r} is not jpeg or png")
        if plane == "input":
            if slide.input_geometry is None:
                raise NotFound(f"slide {name!r} is a finished output: it has no input view")
            geometry = slide.input_geometry
        else:
            if int(plane) >= slide.planes:
                raise NotFound(f"plane {plane} does not exist (planes 0..{slide.planes - 1} and input)")
            geometry = slide.geometry
        return Response(geometry.xml(fmt), media_type="application/xml")

    @_errors
    async def tile(request: Request) -> Response:
        p = request.path_params
        slide = server.slide(p["name"])
        folder, level, file = FILES_DIR.match(p["folder"]), LEVEL.match(p["level"]), TILE_FILE.match(p["file"])
        if not folder:
            raise MfpiError(f"{p['folder']!r} is not PLANE_files (PLANE: input or 0..{slide.planes - 1})")
        if not level:
            raise MfpiError(f"level {p['level']!r} is not a level (a whole number from 0)")
        if not file:
            raise MfpiError(f"{p['file']!r} is not COL_ROW.jpeg or COL_ROW.png")
        col, row, ext = int(file.group(1)), int(file.group(2)), file.group(3)
        data = await server.tile(
            slide.name,
            folder.group(1),
            int(level.group(0)),
            col,
            row,
            "jpeg" if ext == "jpg" else ext,
            request.is_disconnected,
        )
        return Response(data, media_type=MEDIA_TYPES[ext], headers={"Cache-Control": "private, max-age=3600"})

    @_errors
    async def sharpest(request: Request) -> Response:
        slide = server.slide(request.path_params["name"])
        q = request.query_params
        given = [q.get(k, "") for k in ("x", "y", "w", "h")]
        if not all(WHOLE.fullmatch(v) for v in given):
            raise MfpiError("sharpest needs x, y, w, h: whole full-resolution pixels")
        x, y, w, h = map(int, given)
        if w <= 0 or h <= 0:
            raise MfpiError(f"empty region {w}x{h}")
        plane = await server.sharpest(slide.name, Box(y, x, y + h, x + w), request.is_disconnected)
        return JSONResponse({"plane": plane, "z_um": slide.planes_um[plane], "z_unit": z_unit(slide.z_in_steps)})

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, f"no such page: {request.url.path}")

    routes = [
        Route("/", index),
        Route("/slides", slides),
        Route("/stats", stats),
        Route("/slides/{name}/sharpest", sharpest),
        Route("/slides/{name}/{file}", dzi),
        Route("/slides/{name}/{folder}/{level}/{file}", tile),
        Mount("/static", StaticFiles(packages=[("mfpi_deploy.serve", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.add_middleware(Guard, config=config, stopping=lambda: server.stopping)
    return app
