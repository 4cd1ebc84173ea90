"""The training configuration: one typed dataclass, saved with every run as config.json."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfpi_deploy.errors import MfpiError
from training.degrade import Degradation
from training.patches import Foreground


@dataclass
class TrainConfig:
    """Everything a run depends on. Defaults are the paper's recipe except where CPU budgets need less.

    data: one entry per stack; an entry is a TIFF path or a comma-separated list of per-plane files.
    region: `y0:y1,x0:x1` (pixels or fractions) of every stack used for training+validation.
    steps_per_epoch: the sampler draws patches at random, so an epoch is a fixed number of steps.
    adv_weight: weight of the adversarial BCE term (0.01 in the paper; 0 = L1 only).
    warmup_epochs: epochs of L1-only training before the discriminator joins.
    lr_halve_every: the learning rate is halved every this many epochs (paper: 2).
    max_minutes: wall-clock budget; training stops cleanly (saving) when it runs out.
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/mfpinet"
    region: str | None = None
    planes: int = 11
    focus: str = "sharpest"
    z_step_um: float | None = None
    grey: bool = False
    intensity: str = "full"
    width: int = 64
    disc_width: int = 64
    patch: int = 128
    batch: int = 4
    epochs: int = 20
    steps_per_epoch: int = 500
    lr: float = 1e-4
    lr_halve_every: int = 2
    adv_weight: float = 0.01
    warmup_epochs: int = 0
    block: int = 256
    val_fraction: float = 0.15
    val_patches: int = 32
    augment: bool = True
    degradation: Degradation = field(default_factory=Degradation)
    foreground: Foreground = field(default_factory=Foreground)
    cache_mb: float = 2048.0
    seed: int = 0
    threads: int | None = 1
    max_minutes: float | None = None
    command: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.degradation, dict):
            self.degradation = Degradation(**self.degradation)
        if isinstance(self.foreground, dict):
            self.foreground = Foreground(**self.foreground)
        for name in ("width", "disc_width", "patch", "batch", "epochs", "steps_per_epoch", "lr_halve_every", "block"):
            if getattr(self, name) < 1:
                raise MfpiError(f"{name} must be positive, got {getattr(self, name)}")
        if self.adv_weight < 0 or self.lr <= 0:
            raise MfpiError("lr must be positive and adv_weight non-negative")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MfpiError(f"{where}: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise MfpiError(f"{where}: {exc}") from None

    @classmethod
    def read(cls, path: str | Path) -> TrainConfig:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise MfpiError(f"{path}: no config.json (is this a run folder?)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise MfpiError(f"{path}: unreadable config ({exc})") from None
        return cls.from_dict(data, where=str(path))

    def data_specs(self) -> list[list[str]]:
        """Each data entry as a list of paths (one TIFF, or per-plane files)."""
        return [[p.strip() for p in d.split(",") if p.strip()] for d in self.data]
