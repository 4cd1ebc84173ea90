"""The training configuration: one typed dataclass, saved with every run as config.json."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfpi_deploy.degrade import Degradation
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models.factory import config_class
from training.patches import Foreground
from training.planes import check_z_step
from training.schedule import LrSchedule, Schedule

TRAINABLE = ("mfpinet", "deepz")  # the generators mfpi-train trains


def default_lr(arch: str, width: int) -> float:
    """Adam's peak learning rate: 5e-4 for MFPINet up to width 32, shrinking as 1/width above it
    (Adam's stable step shrinks as a network widens: 5e-4 at width 64 diverged within 110 steps on
    a real stack, 2.5e-4 did not); 1e-4 for Deep-Z, whose widths reach 16x its first level's."""
    if arch == "deepz":
        return 1e-4
    return 5e-4 * min(1.0, 32 / width)


@dataclass
class TrainConfig:
    """Everything a run depends on. The network and losses are the paper's; the schedule is fitted
    to the planned run (see training.schedule), and the model starts from the bicubic baseline.

    data: one entry per stack; an entry is a TIFF path or a comma-separated list of per-plane files.
    region: `y0:y1,x0:x1` (pixels or fractions) of every stack used for training+validation.
    arch: `mfpinet`, or `deepz`, the paper's baseline: the Deep-Z network on the bicubic-upsampled
           input with a DPM channel, trained on one random target plane per sample (its recipe).
    model: MFPINet's form: `residual` (bicubic upsampling + the network's correction, equal to
           bicubic at the start) or `paper` (the authors' tanh output, trained from scratch).
    width: generator width; None takes the paper's (MFPINet 64, Deep-Z 48).
    lr: peak learning rate; None takes default_lr(arch, width).
    patch, block: target patch side and train/validation block side; None fits them to the region.
    epochs x steps_per_epoch: the planned run in steps (max_steps, when given, sets it exactly);
           with max_minutes, the run is planned over that wall-clock budget (whichever ends first).
    validations: validation passes per planned run (also at each epoch's end and at the end); best/
           is the checkpoint with the largest validation margin over bicubic.
    patience: stop early after this many validations in a row without a better best/ (0: never).
    average: validate and save the generator's weights averaged uniformly over the run from the end
           of the learning-rate warm-up (training.averaging); False keeps the last step's weights.
    val_patches: validation patches; None sizes the set from the validation blocks' area.
    schedule: `cosine` (lr_warmup share of linear warm-up, then cosine decay to lr_final x lr at
           the end of the plan) or `step` (the paper's: halve every lr_halve_every epochs).
    adv_weight: weight of the adversarial BCE term (0.01 in the paper); 0, the default, trains with L1
           alone (benchmarks/training/gan_ab: at equal steps the adversarial phase did not beat L1 on the
           real stacks, and it costs several times the CPU). When on, it joins once adv_start of the run
           is done (and after warmup_epochs), after an L1 phase.
    disc_width: the discriminator's width (the paper's 64); only used when adv_weight > 0.
    init: a checkpoint (ours, `default`, or one imported from the authors' .pth) whose generator
          weights start the run, to fine-tune instead of training from scratch.
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/mfpinet"
    region: str | None = None
    planes: int = 11
    focus: str = "sharpest"
    z_step_um: float | None = None
    grey: bool = False
    intensity: str = "auto"
    arch: str = "mfpinet"
    model: str = "residual"
    width: int | None = None
    disc_width: int = 64
    patch: int | None = None
    batch: int = 4
    epochs: int = 20
    steps_per_epoch: int = 500
    lr: float | None = None
    schedule: str = "cosine"
    lr_warmup: float = 0.02
    lr_final: float = 0.01
    lr_halve_every: int = 2
    adv_weight: float = 0.0
    adv_start: float = 0.5
    warmup_epochs: int = 0
    block: int | None = None
    val_fraction: float = 0.15
    val_patches: int | None = None
    validations: int = 10
    patience: int = 4
    average: bool = True
    snapshots: bool = False  # keep every validation's generator in snapshots/ (choose on data the run never saw)
    augment: bool = True
    degradation: Degradation = field(default_factory=Degradation)
    foreground: Foreground = field(default_factory=Foreground)
    cache_mb: float = 2048.0
    seed: int = 0
    threads: int | None = 1
    max_minutes: float | None = None
    max_steps: int | None = None
    init: str | None = None
    device: str = "auto"
    command: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.degradation, dict):
            self.degradation = Degradation(**self.degradation)
        if isinstance(self.foreground, dict):
            self.foreground = Foreground(**self.foreground)
        if self.arch not in TRAINABLE:
            raise MfpiError(f"unknown architecture {self.arch!r}; expected {' or '.join(TRAINABLE)}")
        if self.width is None:  # the paper's, the network config's default
            self.width = config_class(self.arch)().width
        positive = ("width", "disc_width", "patch", "batch", "epochs", "steps_per_epoch", "lr_halve_every", "block")
        for name in (*positive, "val_patches", "validations", "max_steps", "planes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise MfpiError(f"{name} must be positive, got {value}")
        if self.threads is not None and self.threads < 0:
            raise MfpiError(f"threads must be 0 (torch's default) or more, got {self.threads}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise MfpiError(f"max_minutes must be positive, got {self.max_minutes}")
        check_z_step(self.z_step_um, "z_step_um")
        if self.lr is None:
            self.lr = default_lr(self.arch, self.width)
        if self.patience < 0:
            raise MfpiError(f"patience must be 0 (never stop early) or more, got {self.patience}")
        if self.max_steps is not None:  # the plan in steps; enough epochs to hold it
            self.epochs = math.ceil(self.max_steps / self.steps_per_epoch)
        if not (math.isfinite(self.lr) and self.lr > 0 and math.isfinite(self.adv_weight) and self.adv_weight >= 0):
            raise MfpiError(f"lr must be positive and adv_weight non-negative, got {self.lr} and {self.adv_weight}")
        if self.warmup_epochs < 0:
            raise MfpiError(f"warmup_epochs must be 0 or more, got {self.warmup_epochs}")
        if self.model not in ("residual", "paper"):
            raise MfpiError(f"unknown model form {self.model!r}; expected residual or paper")
        LrSchedule.parse(self.schedule)
        if not (0 <= self.lr_warmup < 1 and 0 < self.lr_final <= 1 and 0 <= self.adv_start <= 1):
            raise MfpiError("lr_warmup must be in [0, 1), lr_final in (0, 1] and adv_start in [0, 1]")

    def planned_steps(self) -> int:
        """Steps in the plan: max_steps, else epochs x steps_per_epoch."""
        return self.max_steps if self.max_steps is not None else self.epochs * self.steps_per_epoch

    def steps_in_epoch(self, epoch: int) -> int:
        """Steps of the plan in epoch `epoch` (from 0): steps_per_epoch, fewer in a last epoch that
        max_steps cuts short (what the progress bar counts to)."""
        return max(0, min(self.steps_per_epoch, self.planned_steps() - epoch * self.steps_per_epoch))

    def lr_schedule(self) -> Schedule:
        return Schedule(
            LrSchedule.parse(self.schedule), self.lr, self.lr_warmup, self.lr_final, self.lr_halve_every, self.adv_start
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if "schedule" not in data:  # a run folder from before the fitted schedule: keep its recipe
            data = {**data, "schedule": "step", "adv_start": 0.0, "model": "paper"}
        if "average" not in data:  # from before weight averaging: keep the last step's weights
            data = {**data, "average": False}
        if "patience" not in data:  # from before early stopping: validate per epoch only, never stop early
            data = {**data, "patience": 0, "validations": 1}
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
