"""The model card: what a checkpoint's weights are, and how their inputs and outputs are scaled."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfpi_deploy.errors import CheckpointError
from mfpi_deploy.models.configs import Architecture, make_config

CARD_VERSION = 1
WEIGHTS_NAME = "model.safetensors"  # a checkpoint folder: these two files
CARD_NAME = "card.json"
PAPER_PLANES_UM: tuple[float, ...] = tuple(round(2.7 * i, 4) for i in range(-5, 6))

# Both conventions are those of the authors' released code (ARCHITECTURE.md).
INPUT_CONVENTION = "float = uint8 / 255 (range [0, 1])"
OUTPUT_CONVENTION = "uint8 = round(float * 255), float in (0, 1)"


def z_unit(in_steps: bool) -> str:
    """How plane offsets are labelled: micrometres, or plane steps (a model whose stack had no z spacing)."""
    return "plane steps" if in_steps else "µm"


def z_label(z: float, in_steps: bool = False) -> str:
    """One plane's offset for people: "z +2.7 µm", or "z +2 plane steps"."""
    return f"z {z:+g} {z_unit(in_steps)}" if in_steps else f"z {z:+.1f} {z_unit(in_steps)}"


def z_range_label(planes: Sequence[float], in_steps: bool = False) -> str:
    """A stack's planes for people: "z -13.5..13.5 µm (11 planes)"."""
    return f"z {planes[0]:g}..{planes[-1]:g} {z_unit(in_steps)} ({len(planes)} planes)"


@dataclass
class Provenance:
    """Where the weights came from, so a result can be traced back to its data and code."""

    source: str = ""
    data: str = ""
    epochs: int | None = None
    git_commit: str | None = None
    command: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelCard:
    """Architecture, config, planes and value conventions of a checkpoint (saved as JSON)."""

    architecture: str
    config: dict[str, Any]
    planes_um: list[float] = field(default_factory=lambda: list(PAPER_PLANES_UM))
    input_convention: str = INPUT_CONVENTION
    output_convention: str = OUTPUT_CONVENTION
    input_pixel_size_um: float | None = None
    provenance: Provenance = field(default_factory=Provenance)
    card_version: int = CARD_VERSION
    # planes_um are plane steps, not micrometres: the training stack recorded no z spacing
    # (written to the card only when true, so cards of stacks with z spacing stay as they were)
    z_in_steps: bool = False

    def __post_init__(self) -> None:
        arch = Architecture.parse(self.architecture)
        self.architecture = arch.value
        cfg = make_config(arch, **self.config)  # validates names and values
        self.config = dataclasses.asdict(cfg)
        if not isinstance(self.z_in_steps, bool):
            raise CheckpointError(f"z_in_steps must be true or false, got {self.z_in_steps!r}")
        planes = getattr(cfg, "planes", None)
        if planes is not None and len(self.planes_um) != planes:
            raise CheckpointError(
                f"model card lists {len(self.planes_um)} plane offsets for a network of {planes} planes"
            )

    @property
    def channels(self) -> int:
        """Image channels the network takes (1 grey, 3 RGB), not counting a DPM channel."""
        cfg = self.config
        return cfg["in_channels"] - 1 if self.architecture == Architecture.DEEPZ.value else cfg["in_channels"]

    @property
    def z_unit(self) -> str:
        """The unit of `planes_um` in words: "µm", or "plane steps" where the stack had no z spacing."""
        return z_unit(self.z_in_steps)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        if not self.z_in_steps:
            del data["z_in_steps"]
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "model card") -> ModelCard:
        """Parse a card, refusing unknown fields and newer versions with a clear message."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: not a JSON object")
        version = data.get("card_version", CARD_VERSION)
        if not isinstance(version, int) or version > CARD_VERSION:
            raise CheckpointError(f"{where}: card version {version!r} is newer than this tool ({CARD_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{where}: unknown field(s) {', '.join(unknown)}")
        try:
            prov = Provenance(**data.get("provenance", {}))
            return cls(**{**data, "provenance": prov})
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: {exc}") from None

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: model card not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: unreadable model card ({exc})") from None
        return cls.from_dict(data, where=str(path))
