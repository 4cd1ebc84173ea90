"""A raw ASGI request scope: for tests that must reach the app below any client's URL normalising."""

from __future__ import annotations


def get_scope(path: str, raw_path: bytes | None = None) -> dict:
    """The scope of `GET path` from a loopback client to a loopback server (raw_path as sent)."""
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode() if raw_path is None else raw_path,
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "http_version": "1.1",
    }
