"""mfpi-serve on the command line: refusals are one `error:` line with exit code 2, before the
engine is opened; a good start hands uvicorn the app over the named slides on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfpi_deploy.cli import serve as cli
from tests.mfpi_deploy.run.helpers import tiny_checkpoint


def run(args: list[str]):
    return CliRunner().invoke(cli.main, args)


def refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_refusals_are_one_line(tmp_path: Path, slide_path: Path) -> None:
    refused(run([]), "missing SLIDE_OR_OUTPUT")
    refused(run([str(tmp_path / "nope.tif")]), "nope.tif: no such file")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a tiff at all")
    # the slide is refused before the engine (here a missing folder) is looked at
    refused(run([str(junk), "--engine", str(tmp_path / "no-engine")]), "junk.tif: not a readable TIFF")
    refused(run([str(slide_path), "--host", "0.0.0.0"]), "not a loopback address", "--token")
    refused(run([str(slide_path), "--host", "0.0.0.0", "--token", "short"]), "at least 16 characters")
    refused(run([str(slide_path), "--cache-mb", "-5"]), "--cache-mb")
    refused(run([str(slide_path), "--cache-mb", "2000000"]), "--cache-mb must be 0..1048576 megabytes")
    # characters a URL or a cookie would change: the page could never send it back
    refused(run([str(slide_path), "--token", "abc+def/ghi=jkl;mno pq"]), "--token may hold only")
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "cells.tif").write_bytes(slide_path.read_bytes())
    refused(run([str(slide_path), str(twin / "cells.tif")]), "would both be served as 'cells'")
    refused(run([str(slide_path), str(slide_path)]), "cells.tif is named twice")
    refused(run([str(slide_path), "--engine", str(tmp_path / "missing-engine"), "--backend", "ort-cpu"]))


def test_a_taken_port_is_one_line(slide_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused(run([str(slide_path), "--port", str(port)]), f"cannot listen on 127.0.0.1:{port}")


def test_start_serves_the_named_slides_on_loopback(
    tmp_path: Path, slide_path: Path, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict = {}

    def fake_run(app, sock, on_stop, quiet) -> None:
        import warnings

        from tests.mfpi_deploy.serve.conftest import BASE_URL

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient

        started["address"] = sock.getsockname()
        started["listening"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        started["slides"] = TestClient(app, base_url=BASE_URL).get("/slides").json()["slides"]

    monkeypatch.setattr(cli, "run_uvicorn", fake_run)
    monkeypatch.setattr("mfpi_deploy.backends.select.open_backend", lambda *a, **k: backend)
    result = run([str(slide_path), "--port", "0", "--backend", "torch", "--cache-mb", "64"])
    assert result.exit_code == 0, result.output
    host, port = started["address"]
    assert host == "127.0.0.1" and port > 0 and started["listening"]
    # --port 0: the line names the port the system gave, the one the socket listens on
    assert f"mfpi-serve: http://127.0.0.1:{port}/ (Ctrl-C stops)" in result.output
    assert [s["name"] for s in started["slides"]] == ["cells"]
    assert "cells: live, 680x600 px, 11 planes" in result.output


def test_a_bracketed_ipv6_host_is_the_address(slide_path: Path, backend, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    bound: list = []
    monkeypatch.setattr(cli, "run_uvicorn", lambda app, sock, on_stop, quiet: bound.append(sock.getsockname()))
    monkeypatch.setattr("mfpi_deploy.backends.select.open_backend", lambda *a, **k: backend)
    result = run([str(slide_path), "--host", "[::1]", "--port", "0", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    assert bound[0][0] == "::1"
    assert f"http://[::1]:{bound[0][1]}/" in result.output


def test_a_grey_slide_on_an_rgb_engine_needs_convert_channels(
    tmp_path: Path, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.mfpi_deploy.run.helpers import textured, write_tiff

    grey = write_tiff(tmp_path / "grey.tif", textured(64, 64, channels=1))
    monkeypatch.setattr("mfpi_deploy.backends.select.open_backend", lambda *a, **k: backend)
    refused(run([str(grey), "--backend", "torch"]), "grey.tif: a grey image but the engine takes RGB input")
    monkeypatch.setattr(cli, "run_uvicorn", lambda *args: None)
    assert run([str(grey), "--backend", "torch", "--convert-channels", "--port", "0"]).exit_code == 0


def start_server(args: list[str]) -> tuple[subprocess.Popen, str]:
    """`mfpi-serve ARGS --port 0 --quiet` in a process of its own; it and the URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfpi_deploy.cli.serve", *args, "--port", "0", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in proc.stderr:  # type: ignore[union-attr]
        seen.append(line)
        if line.startswith("mfpi-serve: http://"):
            return proc, line.split()[1]
    proc.wait()
    raise AssertionError(f"mfpi-serve did not start (exit {proc.returncode}):\n{''.join(seen)}")


def stopped_by(proc: subprocess.Popen, sig: int) -> str:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    assert err.strip().splitlines()[-1] == "mfpi-serve: stopped", err
    return err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_the_server_cleanly(tmp_path: Path, slide_path: Path, sig: int) -> None:
    """Ctrl-C and SIGTERM (a service manager's stop) close the server and exit 0 with no traceback, also
    when a client went away while its tile was computing (the engine then finishes after the event loop)."""
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    proc, url = start_server([str(slide_path), "--engine", str(ckpt), "--backend", "torch", "--threads", "1"])
    try:
        with urllib.request.urlopen(url + "stats", timeout=30) as answer:
            assert json.load(answer)["engine_tiles_computed"] == 0
        with contextlib.suppress(OSError):  # gone before its engine tiles are done
            urllib.request.urlopen(url + "slides/cells/3_files/11/0_0.jpeg", timeout=0.01)
        stopped_by(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_access_log_does_not_show_the_token() -> None:
    import logging

    args = ("127.0.0.1:5000", "GET", "/stats?x=1&token=SeCrEt0123456789ab&y=2", "1.1", 200)
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', args, None)
    assert cli._hide_token(record)
    assert "SeCrEt" not in record.getMessage() and "/stats?x=1&token=...&y=2" in record.getMessage()


def test_connections_of_the_listening_socket_send_without_delay() -> None:
    """asyncio (uvicorn's loop) sets TCP_NODELAY only on connections of a socket whose protocol is
    TCP by name; without it each tile response waited for the client's delayed ACK (about 40 ms)."""
    import asyncio

    sock = cli.listen_socket("127.0.0.1", 0)
    nodelay: list[int] = []

    async def session() -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nodelay.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        await reader.read()  # until the server closed the connection
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(session())
    assert len(nodelay) == 1 and nodelay[0] != 0


def _exchange(url: str, request: bytes) -> tuple[int, bytes]:
    """Send raw `request` bytes to the server at `url`; its status code and body."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_raw_requests_absolute_form_and_malformed(tmp_path: Path, slide_path: Path) -> None:
    """An absolute-form target (HTTP/1.1 servers must accept it) is served as its path, its
    authority held to the loopback rule like a Host header; a request uvicorn cannot parse gets
    this server's one `error:` line, not uvicorn's own text."""
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    proc, url = start_server([str(slide_path), "--engine", str(ckpt), "--backend", "torch", "--threads", "1"])
    port = url.rstrip("/").rsplit(":", 1)[1]
    try:
        close = b"Connection: close\r\n\r\n"
        status, body = _exchange(url, f"GET http://127.0.0.1:{port}/stats HTTP/1.1\r\nHost: x\r\n".encode() + close)
        assert status == 200 and json.loads(body)["engine_tiles_computed"] == 0
        status, body = _exchange(
            url, f"GET http://example.com:{port}/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + close
        )
        assert status == 403 and body.decode().startswith("error: host 'example.com:")
        status, body = _exchange(
            url, f"GET http://127.0.0.1:{port}/../x HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + close
        )
        assert status == 400 and body.decode().startswith("error: path refused")
        for garbage in (b"GARBAGE\r\n\r\n", b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n"):
            assert _exchange(url, garbage) == (400, cli.MALFORMED.encode())
        stopped_by(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
