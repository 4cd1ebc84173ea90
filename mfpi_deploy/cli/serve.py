"""mfpi-serve: a local web viewer of slides, refocused on request (or read from finished mfpi-run outputs)."""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.cli.common import Command, user_errors
from mfpi_deploy.cli.run import resolve_engine
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.signals import sigterm_as_interrupt
from mfpi_deploy.slide.zstack import parse_plane

STOP_SECONDS = 5  # how long a stop waits for requests in flight (queued engine tiles are dropped at once)


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("slides", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--engine", help="Engine folder from mfpi-export (or a checkpoint for --backend torch). Default: the bundled model."
)
@click.option("--backend", default="auto", show_default=True, type=click.Choice([k.value for k in BackendKind]))
@click.option("--precision", type=click.Choice([p.value for p in Precision]), default=None, help="As mfpi-run.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads of the engine.")
@click.option(
    "--tile",
    type=int,
    help="Input tile side of the engine (as mfpi-run --tile). Default: what mfpi-run takes for the slide, "
    "so both compute the same engine tiles; smaller tiles answer sooner and waste more in halos.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    help="Tiles per engine call (as mfpi-run --batch). Default: mfpi-run's. A viewport computes whole "
    "batches (each tile with its batch-mates, as mfpi-run does), so 1 computes only the tiles it shows.",
)
@click.option(
    "--plane",
    help="Z-stack inputs (a TIFF/OME-TIFF with a Z axis): the plane to refocus from, a number from 0 or "
    "'sharpest' (as mfpi-run --plane).",
)
@click.option("--convert-channels", is_flag=True, help="Convert grey <-> RGB when a slide and the engine differ.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; not loopback needs --token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", help="Secret every request must carry (open the page as /?token=...); 16+ characters.")
@click.option(
    "--cache-mb", default=1024.0, show_default=True, type=float, help="Memory for computed engine tiles (all planes)."
)
@click.option(
    "--stage",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also keep computed engine tiles on disk, as the partial run of `mfpi-run SLIDE --output "
    "DIR/NAME.mfp.ome.zarr`: batches found there are read, not computed, and that command with --resume "
    "computes only what the viewer has not (while an mfpi-run writes it, the viewer only reads).",
)
@click.option("--quiet", is_flag=True, help="No request log.")
@user_errors
def main(
    slides: tuple[Path, ...],
    engine: str | None,
    backend: str,
    precision: str | None,
    threads: int | None,
    tile: int | None,
    batch: int | None,
    plane: str | None,
    convert_channels: bool,
    host: str,
    port: int,
    token: str | None,
    cache_mb: float,
    stage: Path | None,
    quiet: bool,
) -> None:
    """Serve SLIDES (input slides, refocused as you look, or finished mfpi-run outputs) to a browser.

    Each is shown as Deep Zoom tiles under its file name: the input and the 11 focal planes at
    2x; open http://HOST:PORT/ for the viewer.
    """
    from mfpi_deploy.serve.config import ServeConfig

    # refused before anything opens
    config = ServeConfig(
        host=host.strip().removeprefix("[").removesuffix("]"),  # [::1] as in a URL: the address ::1
        port=port,
        token=token,
        cache_mb=cache_mb,
        engine_tile=tile,
        tile_batch=batch,
        convert_channels=convert_channels,
        plane=parse_plane(plane) if plane is not None else None,
        stage=stage,
    )
    if not slides:
        raise MfpiError("missing SLIDE_OR_OUTPUT: name at least one slide or mfpi-run output to serve")

    def log(message: str) -> None:
        click.echo(message, err=True)

    def open_engine():  # only when an input slide is served live
        from mfpi_deploy.backends.select import open_backend

        source = resolve_engine(engine, backend, log)
        # one stream: the viewer's engine tiles come a few at a time, each wanted as soon as it can be
        # (two OpenVINO streams made first viewports about a fifth slower; benchmarks/serve/results/streams)
        return open_backend(backend, source, threads=threads, log=log, precision=precision, streams=1)

    try:
        import uvicorn  # noqa: F401

        from mfpi_deploy.serve.app import create_app
        from mfpi_deploy.serve.server import open_server
    except ImportError as exc:
        raise MfpiError(f"mfpi-serve needs {exc.name}: pip install 'mfpi-deploy[serve]'") from None
    # bound before the slides and the engine, and kept: a taken port is one line, at once, and
    # nothing can take it while the engine loads
    sock = listen_socket(config.host, port)
    try:
        with sigterm_as_interrupt():  # opening may take minutes (a first export): SIGTERM stops it as Ctrl-C
            server = open_server(slides, config, open_engine, log)
        try:
            for slide in server.slides.values():
                g = slide.geometry
                log(f"{slide.name}: {slide.kind}, {g.width}x{g.height} px, {slide.planes} planes ({slide.path})")
            address = url(config.host, sock.getsockname()[1])  # the port the system gave for --port 0
            log(f"mfpi-serve: {address}" + ("?token=..." if token else "") + " (Ctrl-C stops)")
            run_uvicorn(create_app(server), sock, server.stop, quiet)
        finally:
            server.close()
    finally:
        sock.close()
    log("mfpi-serve: stopped")


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), or one line saying why there cannot be.
    Connections made before the server is ready wait in its backlog (the page loads once it is).
    The protocol is named (IPPROTO_TCP, not 0): asyncio sets TCP_NODELAY only on connections of
    such a socket, and without it each tile response waited about 40 ms for the viewer's delayed
    ACK (Nagle), which made a focus step of 32 cached tiles take 0.28 s instead of 0.06 s."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # listening: a second server's bind now fails too (until then both may bind)
    except OSError as exc:
        sock.close()
        raise MfpiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _hide_token(record: logging.LogRecord) -> bool:
    """Access-log lines show `token=...`, not the secret."""
    if isinstance(record.args, tuple):
        record.args = tuple(_TOKEN.sub(r"\1...", a) if isinstance(a, str) else a for a in record.args)
    return True


_TOKEN = re.compile(r"((?:^|[?&])token=)[^&\s]*")


@contextlib.contextmanager
def stops_quietly() -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the server (uvicorn handles them while it runs, then raises them
    again when it returns: here they are let go, so the server closes and exits 0 either way)."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


MALFORMED = "error: malformed HTTP request refused\n"


def http_protocol() -> Any:
    """uvicorn's h11 protocol, answering a request it cannot parse with this server's one-line
    `error:` text (uvicorn's own says "Invalid HTTP request received."). "h11" as it is, should a
    later uvicorn move the class."""
    try:
        from uvicorn.protocols.http.h11_impl import H11Protocol
    except ImportError:
        return "h11"
    if not callable(getattr(H11Protocol, "send_400_response", None)):
        return "h11"

    class Protocol(H11Protocol):  # type: ignore[misc, valid-type]
        def send_400_response(self, msg: str) -> None:
            super().send_400_response(MALFORMED)

    return Protocol


def run_uvicorn(app: object, sock: socket.socket, on_stop: Callable[[], None], quiet: bool) -> None:
    """Serve `app` on `sock` until Ctrl-C or SIGTERM; `on_stop` is called as the stop begins (the
    server drops its queued engine tiles, so the requests waiting for them answer at once and the
    stop does not wait for the engine)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            on_stop()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        http=http_protocol(),
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        server_header=False,
        lifespan="off",  # the app has no start-up or shutdown events
        timeout_graceful_shutdown=STOP_SECONDS,
    )
    logging.getLogger("uvicorn.access").addFilter(_hide_token)
    with stops_quietly():
        Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
