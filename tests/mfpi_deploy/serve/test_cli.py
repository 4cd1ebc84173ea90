"""mfpi-serve on the command line: refusals are one `error:` line with exit code 2, before the
engine is opened; a good start hands uvicorn the app over the named slides on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfpi_deploy.cli import serve as cli


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
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "cells.tif").write_bytes(slide_path.read_bytes())
    refused(run([str(slide_path), str(twin / "cells.tif")]), "would both be served as 'cells'")
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

    def fake_run(app, **kwargs) -> None:
        import warnings

        from tests.mfpi_deploy.serve.conftest import BASE_URL

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient

        started.update(kwargs)
        started["slides"] = TestClient(app, base_url=BASE_URL).get("/slides").json()["slides"]

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr("mfpi_deploy.backends.select.open_backend", lambda *a, **k: backend)
    result = run([str(slide_path), "--port", "0", "--backend", "torch", "--cache-mb", "64"])
    assert result.exit_code == 0, result.output
    assert started["host"] == "127.0.0.1" and started["port"] == 0
    assert [s["name"] for s in started["slides"]] == ["cells"]
    assert "cells: live, 680x600 px, 11 planes" in result.output


def test_a_grey_slide_on_an_rgb_engine_needs_convert_channels(
    tmp_path: Path, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.mfpi_deploy.run.helpers import textured, write_tiff

    grey = write_tiff(tmp_path / "grey.tif", textured(64, 64, channels=1))
    monkeypatch.setattr("mfpi_deploy.backends.select.open_backend", lambda *a, **k: backend)
    refused(run([str(grey), "--backend", "torch"]), "grey.tif: a grey image but the engine takes RGB input")
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    assert run([str(grey), "--backend", "torch", "--convert-channels", "--port", "0"]).exit_code == 0
