"""How `mfpi-serve` serves: address, access token, cache bound, tile format and queue bounds.

Safe by default: it binds the loopback address; any other address needs a token, which every
request must then carry (a `token` query parameter once, kept as a cookie; or an
`Authorization: Bearer` header).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.slide.zstack import PlaneChoice, check_plane

LOOPBACK_NAMES = ("localhost",)
MIN_TOKEN_CHARS = 16
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")  # URL-safe as typed, and a valid cookie value
MAX_CACHE_MB = 1 << 20  # 1 TiB: larger is a typo


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """Options of one server; refused values raise MfpiError before anything is opened."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    cache_mb: float = 1024.0  # engine tiles kept in memory (all planes of each)
    tile: int = 256  # DZI tile side
    overlap: int = 0  # DZI overlap (0: every DZI tile of the full level lies in whole engine tiles)
    jpeg_quality: int = 90
    compute_levels: int = 2  # finest DZI levels of the refocused view computed on request
    max_pending: int = 256  # engine tiles queued at most; more requests are refused (503) until it drains
    engine_batch: int = 4  # queued engine tiles of one slide handed to one tile loop (each with its batch-mates)
    engine_tile: int | None = None  # input tile side (as mfpi-run --tile); None: mfpi-run's choice
    tile_batch: int | None = None  # tiles per engine call (as mfpi-run --batch); None: mfpi-run's choice
    convert_channels: bool = False  # grey slide on an RGB engine (or the reverse), as mfpi-run --convert-channels
    stage: Path | None = None  # folder of partial runs shared with mfpi-run (serve.staging); None: memory only
    plane: PlaneChoice = None  # which z plane of Z-stack inputs (a number or "sharpest"), as mfpi-run --plane
    warm_up: bool = True  # run one batch of the plan's shape at start (compiles it), not in the first viewport

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise MfpiError(f"--port must be 0..65535, got {self.port}")
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise MfpiError(f"--token must be at least {MIN_TOKEN_CHARS} characters")
        if self.token is not None and not TOKEN_CHARS.fullmatch(self.token):
            raise MfpiError(
                "--token may hold only letters, digits and - . _ ~ (it travels in URLs and a cookie "
                'as it is); e.g. python -c "import secrets; print(secrets.token_urlsafe(24))"'
            )
        if not is_loopback(self.host) and not self.token:
            raise MfpiError(
                f"--host {self.host} is not a loopback address: pass --token SECRET (16+ characters) so only "
                "people who have it can use the server"
            )
        if not 0 <= self.cache_mb <= MAX_CACHE_MB:
            raise MfpiError(f"--cache-mb must be 0..{MAX_CACHE_MB} megabytes, got {self.cache_mb}")
        if self.tile < 16 or self.tile > 4096 or not 0 <= self.overlap < self.tile // 2:
            raise MfpiError(f"tile {self.tile} with overlap {self.overlap}: need 16..4096 and 0 <= overlap < tile/2")
        if not 1 <= self.jpeg_quality <= 100:
            raise MfpiError(f"JPEG quality must be 1..100, got {self.jpeg_quality}")
        if self.compute_levels < 1:
            raise MfpiError(f"at least the full-resolution level is computed, got compute_levels={self.compute_levels}")
        if self.engine_tile is not None and self.engine_tile < 1:
            raise MfpiError(f"--tile must be at least 1, got {self.engine_tile}")
        if self.tile_batch is not None and self.tile_batch < 1:
            raise MfpiError(f"--batch must be at least 1, got {self.tile_batch}")
        if self.stage is not None and self.stage.exists() and not self.stage.is_dir():
            raise MfpiError(f"--stage {self.stage} is a file, not a folder")
        check_plane(self.plane)
        if self.max_pending < 1 or self.engine_batch < 1:
            raise MfpiError("queue bound and engine batch must be at least 1")

    @property
    def cache_bytes(self) -> int:
        return int(self.cache_mb * 1024 * 1024)
