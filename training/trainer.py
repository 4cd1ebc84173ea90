"""The training loop: the paper's GAN recipe (L1 + 0.01 BCE adversarial, Adam 1e-4, lr halved
every 2 epochs) with an optional L1 warm-up, per-epoch checkpoints, resume, and a time budget.

Run folder layout:
  config.json            the TrainConfig of the run
  log.jsonl, log.csv     one record per epoch (losses, validation PSNR per plane, lr, time)
  last/                  generator checkpoint (model.safetensors + card.json) + training state
  best/                  generator checkpoint with the best validation PSNR so far
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mfpi_deploy.checkpoint import ModelCard, Provenance, save_checkpoint
from mfpi_deploy.checkpoint.io import load_state_strict
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import create_model
from training.config import TrainConfig
from training.data import (Source, check_patch, make_batch, open_sources, region_candidates, source_channels,
                           split_sources, augment)
from training.metrics import psnr_from_mse
from training.patches import draw
from training.state import existing_dir, flatten_optimizer, load_state, replace_dir, save_state, unflatten_optimizer


@dataclass
class Progress:
    """Where training is: epochs done, steps done in the current epoch, best validation PSNR."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_psnr: float = -math.inf
    best_epoch: int | None = None
    elapsed_s: float = 0.0
    last_val_psnr: float | None = None
    finished: bool = False
    sums: dict[str, float] = field(default_factory=dict)  # running loss sums of the current epoch


@dataclass
class RunResult:
    out: Path
    progress: Progress
    stopped: str  # "done", "time budget", "interrupted"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class Trainer:
    """Holds models, optimizers, data and progress of one run; `run()` trains until done or stopped."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        self.out = Path(cfg.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        check_patch(cfg.patch, cfg.degradation.scale)
        if not cfg.data:
            raise MfpiError("no training data given (--data)")
        self.sources = open_sources(cfg.data_specs(), planes=cfg.planes, focus=cfg.focus, z_step_um=cfg.z_step_um,
                                    region=cfg.region, grey=cfg.grey, rule=cfg.intensity, cache_mb=cfg.cache_mb)
        self.channels = source_channels(self.sources)
        train_blocks, val_blocks = split_sources(self.sources, cfg.block, cfg.val_fraction, cfg.seed)
        self.train_candidates = region_candidates(self.sources, train_blocks, cfg.patch, cfg.foreground)
        if not self.train_candidates:
            raise MfpiError("no training patch passes the foreground test; lower the foreground thresholds")
        val_candidates = region_candidates(self.sources, val_blocks, cfg.patch, cfg.foreground) if val_blocks else []
        self.val_patches = draw(val_candidates, cfg.val_patches, np.random.default_rng([cfg.seed, 99])) if val_candidates else []
        sel = self.sources[0].selection
        self.centre = sel.centre_index
        torch.manual_seed(cfg.seed)
        self.gen = create_model("mfpinet", in_channels=self.channels, planes=cfg.planes, width=cfg.width)
        self.disc = create_model("mfpinet_discriminator", in_channels=cfg.planes * self.channels, width=cfg.disc_width)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.sched_g = torch.optim.lr_scheduler.StepLR(self.opt_g, cfg.lr_halve_every, gamma=0.5)
        self.sched_d = torch.optim.lr_scheduler.StepLR(self.opt_d, cfg.lr_halve_every, gamma=0.5)
        self.progress = Progress()
        if resume:
            self._resume()
        else:
            if (self.out / "config.json").exists():
                raise MfpiError(f"{self.out}: already holds a run; pass --resume to continue it or choose another --out")
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(cfg.to_json())
        self.log(f"data: {len(self.sources)} stack(s), {self.channels} channel(s), target planes "
                 f"{list(sel.target)} (input plane {sel.input}), offsets {list(sel.offsets_um)}"
                 f"{' (plane steps)' if sel.offsets_in_steps else ' um'}; {len(train_blocks)} train / {len(val_blocks)} "
                 f"validation blocks, {len(self.train_candidates)} foreground patch positions for training")

    # ---- checkpoints -------------------------------------------------------------------
    def card(self, metrics: dict[str, float]) -> ModelCard:
        sel = self.sources[0].selection
        pix = self.sources[0].stack.pixel_size_um
        data = "; ".join(self.cfg.data)
        if self.cfg.region:
            data += f" region {self.cfg.region}"
        if sel.offsets_in_steps:
            data += "; z offsets are plane steps (the stack records no z spacing)"
        return ModelCard(
            architecture="mfpinet",
            config={"in_channels": self.channels, "planes": self.cfg.planes, "width": self.cfg.width},
            planes_um=list(sel.offsets_um),
            input_pixel_size_um=round(pix * self.cfg.degradation.scale, 6) if pix else None,
            provenance=Provenance(source="trained with mfpi-train (training.trainer)", data=data,
                                  epochs=self.progress.epoch, git_commit=git_commit(), command=self.cfg.command,
                                  metrics=metrics),
        )

    def _metrics(self) -> dict[str, float]:
        m = {"val_psnr": self.progress.last_val_psnr} if self.progress.last_val_psnr is not None else {}
        return {k: round(v, 4) for k, v in m.items()}

    def save(self) -> None:
        """Save generator checkpoint + full training state into last/ (atomically)."""
        tmp = self.out / "last.new"
        if tmp.exists():
            import shutil
            shutil.rmtree(tmp)
        save_checkpoint(self.gen, self.card(self._metrics()), tmp)
        tensors = {f"disc.{k}": v.detach().cpu() for k, v in self.disc.state_dict().items()}
        tg, sg = flatten_optimizer(self.opt_g, "opt_g")
        td, sd = flatten_optimizer(self.opt_d, "opt_d")
        tensors.update(tg)
        tensors.update(td)
        tensors["torch_rng"] = torch.get_rng_state()
        scalars = {"progress": dataclasses.asdict(self.progress), "opt_g": sg, "opt_d": sd,
                   "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict()}
        save_state(tmp, tensors, _json_safe(scalars))
        replace_dir(tmp, self.out / "last")

    def save_best(self) -> None:
        tmp = self.out / "best.new"
        save_checkpoint(self.gen, self.card(self._metrics()), tmp, overwrite=True)
        replace_dir(tmp, self.out / "best")

    def _resume(self) -> None:
        last = existing_dir(self.out / "last")
        if last is None:
            raise MfpiError(f"{self.out}: nothing to resume (no last/ checkpoint)")
        from safetensors.torch import load_file

        from mfpi_deploy.checkpoint.io import WEIGHTS_NAME
        load_state_strict(self.gen, load_file(str(last / WEIGHTS_NAME)), where=str(last / WEIGHTS_NAME))
        tensors, scalars = load_state(last)
        disc = {k[5:]: v for k, v in tensors.items() if k.startswith("disc.")}
        load_state_strict(self.disc, disc, where=str(last / "train_state.safetensors"))
        unflatten_optimizer(self.opt_g, "opt_g", tensors, scalars["opt_g"])
        unflatten_optimizer(self.opt_d, "opt_d", tensors, scalars["opt_d"])
        self.sched_g.load_state_dict(scalars["sched_g"])
        self.sched_d.load_state_dict(scalars["sched_d"])
        if "torch_rng" in tensors:
            torch.set_rng_state(tensors["torch_rng"])
        p = scalars["progress"]
        p["best_psnr"] = -math.inf if p.get("best_psnr") is None else p["best_psnr"]
        self.progress = Progress(**p)
        self.log(f"resumed {self.out} at epoch {self.progress.epoch}, step {self.progress.step_in_epoch}, "
                 f"lr {self.opt_g.param_groups[0]['lr']:.3g}")

    # ---- data ----------------------------------------------------------------------------
    def epoch_plan(self, epoch: int) -> tuple[list[tuple[int, object]], np.ndarray]:
        """The patches and flip/rotation codes of an epoch: a function of (seed, epoch) only,
        so a resumed run sees exactly the batches it would have seen."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, epoch])
        patches = draw(self.train_candidates, cfg.steps_per_epoch * cfg.batch, rng)
        codes = rng.integers(0, 8, size=len(patches)) if cfg.augment else np.zeros(len(patches), int)
        return patches, codes

    def batch(self, patches, codes) -> tuple[torch.Tensor, torch.Tensor]:
        targets = [augment(self.sources[s].target(r), int(c)) for (s, r), c in zip(patches, codes)]
        return make_batch(targets, self.centre, self.cfg.degradation)

    # ---- one step ------------------------------------------------------------------------
    def gan_active(self, epoch: int) -> bool:
        return self.cfg.adv_weight > 0 and epoch >= self.cfg.warmup_epochs

    def step(self, x: torch.Tensor, y: torch.Tensor, gan: bool) -> dict[str, float]:
        """One optimisation step of G (and of D when the adversarial term is on)."""
        self.gen.train()
        fake = self.gen(x)
        l1 = F.l1_loss(fake, y)
        out = {"l1": float(l1.detach())}
        if gan:
            self.disc.train()
            logits_fake = self.disc.logits(fake)
            adv = F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))
            loss_g = l1 + self.cfg.adv_weight * adv
            out["adv"] = float(adv.detach())
        else:
            loss_g = l1
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if gan:
            real = self.disc.logits(y)
            fake_d = self.disc.logits(fake.detach())
            loss_d = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake_d, torch.zeros_like(fake_d)))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            out["d"] = float(loss_d.detach())
        return out

    # ---- validation ----------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> tuple[float | None, list[float]]:
        """Mean over planes of the per-plane PSNR (8-bit, peak 255) on the validation patches."""
        if not self.val_patches:
            return None, []
        self.gen.eval()
        c = self.channels
        sq = np.zeros(self.cfg.planes)
        count = 0
        for i in range(0, len(self.val_patches), max(self.cfg.batch, 8)):
            chunk = self.val_patches[i:i + max(self.cfg.batch, 8)]
            x, y = self.batch(chunk, np.zeros(len(chunk), int))
            pred = torch.round(self.gen(x) * 255)
            truth = torch.round(y * 255)
            err = ((pred - truth) ** 2).reshape(len(chunk), self.cfg.planes, c, *y.shape[2:])
            sq += err.sum(dim=(0, 2, 3, 4)).double().numpy()
            count += len(chunk) * c * y.shape[2] * y.shape[3]
        per_plane = [psnr_from_mse(s / count) for s in sq]
        return float(np.mean(per_plane)), per_plane

    # ---- loop ----------------------------------------------------------------------------
    def run(self) -> RunResult:
        cfg = self.cfg
        p = self.progress
        start = time.monotonic() - p.elapsed_s  # elapsed_s is cumulative over resumes
        session = time.monotonic()  # the budget counts this session only
        budget = cfg.max_minutes * 60 if cfg.max_minutes else None
        stopped = "done"
        try:
            while p.epoch < cfg.epochs:
                patches, codes = self.epoch_plan(p.epoch)
                gan = self.gan_active(p.epoch)
                bar = tqdm(range(p.step_in_epoch, cfg.steps_per_epoch), desc=f"epoch {p.epoch + 1}/{cfg.epochs}",
                           initial=p.step_in_epoch, total=cfg.steps_per_epoch, leave=True, mininterval=5.0)
                for s in bar:
                    sl = slice(s * cfg.batch, (s + 1) * cfg.batch)
                    x, y = self.batch(patches[sl], codes[sl])
                    losses = self.step(x, y, gan)
                    for k, v in losses.items():
                        p.sums[k] = p.sums.get(k, 0.0) + v
                    p.sums["n"] = p.sums.get("n", 0.0) + 1
                    p.step_in_epoch = s + 1
                    p.global_step += 1
                    p.elapsed_s = time.monotonic() - start
                    bar.set_postfix({k: f"{v / p.sums['n']:.4f}" for k, v in p.sums.items() if k != "n"}, refresh=False)
                    if budget is not None and time.monotonic() - session >= budget and s + 1 < cfg.steps_per_epoch:
                        stopped = "time budget"
                        break
                bar.close()
                if stopped != "done":
                    self._end_of_epoch(partial=True)
                    break
                lr_used = self.opt_g.param_groups[0]["lr"]
                p.epoch += 1
                p.step_in_epoch = 0
                with warnings.catch_warnings():  # D has not stepped during an L1 warm-up: expected
                    warnings.simplefilter("ignore", UserWarning)
                    self.sched_g.step()
                    self.sched_d.step()
                self._end_of_epoch(partial=False, lr=lr_used)
                if budget is not None and time.monotonic() - session >= budget and p.epoch < cfg.epochs:
                    stopped = "time budget"
                    break
            else:
                p.finished = True
                self.save()
        except KeyboardInterrupt:
            p.elapsed_s = time.monotonic() - start
            self.save()
            self.log(f"interrupted: state saved to {self.out / 'last'} (resume with --resume)")
            raise
        if stopped == "time budget":
            self.log(f"time budget of {cfg.max_minutes} min used: stopped at epoch {p.epoch}, step {p.step_in_epoch}; "
                     f"state saved to {self.out / 'last'}")
        return RunResult(self.out, p, stopped)

    def _end_of_epoch(self, *, partial: bool, lr: float | None = None) -> None:
        p = self.progress
        val, per_plane = self.validate()
        p.last_val_psnr = val
        n = max(p.sums.get("n", 0.0), 1.0)
        record = {"epoch": p.epoch + (p.step_in_epoch / self.cfg.steps_per_epoch if partial else 0),
                  "global_step": p.global_step, "elapsed_s": round(p.elapsed_s, 1),
                  "lr": self.opt_g.param_groups[0]["lr"] if lr is None else lr, "gan": self.gan_active(p.epoch - (0 if partial else 1)),
                  **{f"loss_{k}": round(v / n, 6) for k, v in p.sums.items() if k != "n"},
                  "val_psnr": None if val is None else round(val, 4),
                  "val_psnr_planes": [round(v, 3) for v in per_plane]}
        if not partial:
            p.sums = {}
        if val is not None and val > p.best_psnr:
            p.best_psnr, p.best_epoch = val, p.epoch
            self.save_best()
        elif val is None:
            self.save_best()
        self.save()
        self._append_log(record)
        self.log(f"epoch {record['epoch']:.2f}: " + ", ".join(
            f"{k} {v}" for k, v in record.items() if k.startswith("loss_") or k == "val_psnr"))

    def _append_log(self, record: dict) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        path = self.out / "log.csv"
        flat = {k: v for k, v in record.items() if k != "val_psnr_planes"}
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["epoch", "global_step", "elapsed_s", "lr", "gan", "loss_l1",
                                               "loss_adv", "loss_d", "val_psnr"], extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(flat)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print) -> RunResult:
    """Start a new run in cfg.out and train it (the Python API of `mfpi-train`)."""
    return Trainer(cfg, log=log).run()


def resume(out: str | Path, *, epochs: int | None = None, max_minutes: float | None = None,
           log: Callable[[str], None] = print) -> RunResult:
    """Continue the run in `out` with its saved config (optionally more epochs / a new budget)."""
    cfg = TrainConfig.read(Path(out) / "config.json")
    cfg.out = str(out)
    if epochs is not None:
        cfg.epochs = epochs
    cfg.max_minutes = max_minutes
    return Trainer(cfg, resume=True, log=log).run()
