"""Who an engine is: its path plus a hash of its manifest (or card), what a resume must match, and
the model's recorded PSNR against truth, which sets the floor of lossy output tiles."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineIdentity:
    """What `open_backend` records about the engine it opened (empty for a backend built by hand)."""

    id: str = ""
    model_psnr_db: float | None = None  # validation PSNR from the model card's provenance, if recorded


def _card_files(source: Path) -> tuple[Path, ...]:
    return (source / "card.json",) if source.is_dir() else (source.with_suffix(".json"),)


def engine_identity(source: str | Path) -> str:
    """Path plus a hash of the engine's manifest (or card): what a resume must match."""
    source = Path(source)
    for name in ("manifest.json", "card.json"):
        f = source / name if source.is_dir() else source.with_suffix(".json")
        if f.is_file():
            return f"{source.resolve()}#{hashlib.sha256(f.read_bytes()).hexdigest()[:16]}"
    return str(source.resolve())


def model_psnr_db(source: str | Path) -> float | None:
    """The model's validation PSNR (dB) from its card (engine folder or checkpoint), if recorded."""
    for f in _card_files(Path(source)):
        if f.is_file():
            try:
                value = json.loads(f.read_text())["provenance"]["metrics"]["val_psnr"]
            except (OSError, ValueError, KeyError, TypeError):
                return None
            return float(value) if isinstance(value, (int, float)) else None
    return None


def identify(source: str | Path) -> EngineIdentity:
    return EngineIdentity(engine_identity(source), model_psnr_db(source))
