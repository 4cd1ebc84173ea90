"""A training run on disk: config, logs, `last/` (checkpoint + full training state) and `best/`.

  config.json            the TrainConfig of the run
  log.jsonl, log.csv     one record per validation (losses, per-plane PSNR of the model and the
                         baselines, margin over bicubic, lr, wall-clock and CPU time)
  last/                  generator checkpoint (model.safetensors + card.json) + training state
  best/                  the generator with the largest validation margin over bicubic so far

Every folder is written under a temporary name and swapped in (`fileio.replace_dir`), so a
crash leaves the previous complete copy; tensors are safetensors and scalars JSON, nothing
is pickled.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from mfpi_deploy.checkpoint import ModelCard, Provenance, save_checkpoint
from mfpi_deploy.checkpoint.io import WEIGHTS_NAME
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import existing_dir, replace_dir, write_atomic
from training.config import TrainConfig
from training.data import DataInfo
from training.state import load_state, save_state

LOG_FIELDS = [
    "epoch",
    "global_step",
    "elapsed_s",
    "cpu_s",
    "lr",
    "gan",
    "loss_l1",
    "loss_adv",
    "loss_d",
    "val_psnr",
    "val_margin_db",
]


class RunFolder:
    """The files of one run. `create` starts a new run, the other methods read and write its parts."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    @property
    def config_path(self) -> Path:
        return self.out / "config.json"

    def create(self, cfg: TrainConfig) -> None:
        if self.config_path.exists():
            raise MfpiError(f"{self.out}: already holds a run; pass --resume to continue it or choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config_path, cfg.to_json())

    def card(
        self,
        cfg: TrainConfig,
        model_config: dict[str, Any],
        data: DataInfo,
        *,
        epochs: int,
        metrics: dict[str, float],
        commit: str | None,
    ) -> ModelCard:
        text = data.description + (f" region {cfg.region}" if cfg.region else "")
        if data.offsets_in_steps:
            text += "; z offsets are plane steps (the stack records no z spacing)"
        return ModelCard(
            architecture=cfg.arch,
            config=model_config,
            planes_um=list(data.planes_um),
            z_in_steps=data.offsets_in_steps,
            input_pixel_size_um=data.input_pixel_size_um,
            provenance=Provenance(
                source="trained with mfpi-train (training.trainer)"
                + (f", initialised from {cfg.init}" if cfg.init else ""),
                data=text,
                epochs=epochs,
                git_commit=commit,
                command=cfg.command,
                metrics=metrics,
            ),
        )

    def save_last(
        self, gen: torch.nn.Module, card: ModelCard, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]
    ) -> None:
        """Generator checkpoint + training state into last/ (swapped in whole)."""
        self._swap_in(self.out / "last", gen, card, lambda tmp: save_state(tmp, tensors, _json_safe(scalars)))

    def save_best(self, gen: torch.nn.Module, card: ModelCard) -> None:
        self._swap_in(self.out / "best", gen, card)

    def save_snapshot(self, gen: torch.nn.Module, card: ModelCard, step: int) -> Path:
        """The generator as it is at `step` into snapshots/step-NNNNNNN (a checkpoint mfpi-eval reads)."""
        return self._swap_in(self.out / "snapshots" / f"step-{step:07d}", gen, card)

    @staticmethod
    def _swap_in(
        target: Path, gen: torch.nn.Module, card: ModelCard, more: Callable[[Path], None] | None = None
    ) -> Path:
        """A checkpoint (and whatever `more` adds) written beside `target`, then swapped in whole."""
        tmp = target.with_name(target.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(gen, card, tmp)
        if more is not None:
            more(tmp)
        replace_dir(tmp, target)
        return target

    def load_last(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any], Path]:
        """(generator weights, training-state tensors, scalars, folder) of last/ (or its .old copy)."""
        last = existing_dir(self.out / "last")
        if last is None:
            raise MfpiError(f"{self.out}: nothing to resume (no last/ checkpoint)")
        weights = load_file(str(last / WEIGHTS_NAME))
        tensors, scalars = load_state(last)
        return weights, tensors, scalars, last

    def append_log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(_json_safe(record)) + "\n")
        path = self.out / "log.csv"
        new = not path.exists()
        fields = LOG_FIELDS
        if not new:  # keep the columns of a log written by an earlier version
            with open(path, newline="") as f:
                fields = next(csv.reader(f), fields)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: v for k, v in record.items() if not isinstance(v, list)})


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
