"""The training loop: MFPINet's L1 + adversarial recipe on a schedule fitted to the planned run
(also the Deep-Z baseline's: the same losses on one random target plane per sample).

`Trainer` holds the data, the networks and their optimisers and does one step at a time;
`run()` loops until the plan (steps, or the time budget) is done, validating every epoch and
at the end. The run folder (config, logs, last/ and best/) is `training.run_folder`, the
learning rate and adversarial start are `training.schedule`, validation with the baselines is
`training.validation`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mfpi_deploy.checkpoint import ModelCard
from mfpi_deploy.checkpoint.io import load_state_strict
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.gitinfo import git_commit
from mfpi_deploy.models import Architecture, DeepZStack, create_model, stack_dpm_values
from mfpi_deploy.models.deepz import with_dpm
from mfpi_deploy.signals import sigterm_as_interrupt
from training.averaging import WeightAverage, raw_tensors, raw_weights
from training.config import TrainConfig
from training.data import prepare_data
from training.patches import draw
from training.run_folder import RunFolder
from training.schedule import run_fraction
from training.state import flatten_optimizer, unflatten_optimizer
from training.validation import Validation, validate

Clock = Callable[[], float]


@dataclass
class Progress:
    """Where training is: epochs and steps done, the plan, the best validation so far."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_margin: float = -math.inf  # validation PSNR margin over bicubic, summed over planes (dB)
    best_psnr: float = -math.inf  # the mean validation PSNR of that best checkpoint
    best_epoch: float | None = None
    elapsed_s: float = 0.0  # training wall-clock, cumulative over resumes
    cpu_s: float = 0.0  # process CPU time (all threads), cumulative over resumes
    plan_s: float | None = None  # the time budget the schedule is planned over (None: steps only)
    last_val_psnr: float | None = None
    best_planes: dict[str, list[float]] | None = None  # per-plane PSNR of best/: model, bicubic, focus_copy
    finished: bool = False
    next_val: int = 1  # the next validation is due when this many 1/validations of the plan are done
    since_best: int = 0  # validations in a row without a better best/ (the patience count)
    sums: dict[str, float] = field(default_factory=dict)  # running loss sums since the last validation


@dataclass
class RunResult:
    out: Path
    progress: Progress
    stopped: str  # "done", "time budget", "early stop" or "session limit"
    validation: Validation | None = None  # of best/


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise MfpiError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MfpiError(f"device {name} asked for, but torch sees no CUDA GPU")
    return torch.device(name)


class Trainer:
    """Data, networks, optimisers and progress of one run; `run()` trains until the plan is done."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        resume: bool = False,
        extend: bool = False,
        session_limit_s: float | None = None,
        log: Callable[[str], None] = print,
        clock: Clock = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.extend = extend  # resume: the config's plan replaces the saved one
        self.session_limit_s = session_limit_s  # stop this sitting after so long, leaving the plan as it is
        self.log = log
        self.clock = clock
        self.folder = RunFolder(cfg.out)
        self.out = self.folder.out
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.data = prepare_data(
            cfg.data_specs(),
            planes=cfg.planes,
            focus=cfg.focus,
            z_step_um=cfg.z_step_um,
            region=cfg.region,
            grey=cfg.grey,
            rule=cfg.intensity,
            cache_mb=cfg.cache_mb,
            patch=cfg.patch,
            block=cfg.block,
            val_fraction=cfg.val_fraction,
            val_patches=cfg.val_patches,
            foreground=cfg.foreground,
            scale=cfg.degradation.scale,
            seed=cfg.seed,
        )
        self.channels = self.data.channels
        self.schedule = cfg.lr_schedule()
        torch.manual_seed(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.deepz = cfg.arch == Architecture.DEEPZ.value
        if self.deepz:  # one plane per pass: the image + a DPM channel, upsampled inside the network
            self.model_config = {"in_channels": self.channels + 1, "width": cfg.width, "scale": cfg.degradation.scale}
        else:
            self.model_config = {
                "in_channels": self.channels,
                "planes": cfg.planes,
                "width": cfg.width,
                "residual": cfg.model == "residual",
            }
        self.gen = create_model(cfg.arch, **self.model_config).to(self.device)
        judged = self.channels if self.deepz else cfg.planes * self.channels  # D sees what G outputs
        self.disc = create_model("mfpinet_discriminator", in_channels=judged, width=cfg.disc_width).to(self.device)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        if cfg.init and not resume:
            self._init_from(cfg.init)
        elif self.deepz and not resume:
            start_deepz_at_mid_grey(self.gen)
        self.average = WeightAverage(self.gen) if cfg.average else None
        self.progress = Progress(plan_s=cfg.max_minutes * 60 if cfg.max_minutes else None)
        self.commit = git_commit()  # the code that starts the run, not whatever HEAD is at a later save
        if resume:
            self._resume()
        else:
            self.folder.create(cfg)
        d = self.data
        sel = d.sources[0].selection
        rules = sorted({s.stack.effective_rule.value for s in d.sources if s.stack.dtype != np.uint8})
        self.log(
            f"data: {len(d.sources)} stack(s), {self.channels} channel(s), target planes {list(sel.target)} "
            f"(input plane {sel.input}), offsets {list(sel.offsets_um)}"
            f"{' (plane steps)' if sel.offsets_in_steps else ' um'}"
            + (f", 16-bit -> 8-bit: {', '.join(rules)}" if rules else "")
            + f"; patch {d.patch}, blocks of {d.block}: {d.train_blocks} train / {d.val_blocks} validation, "
            f"{len(d.train)} foreground patch positions for training"
        )
        if sel.offsets_in_steps:
            self.log(
                "warning: the stack records no z spacing, so the offsets are plane steps; the model card and "
                "mfpi-run's outputs will give them as plane steps, with no physical z size: pass --z-step-um STEP "
                "for real z positions"
            )
        if not d.val:
            self.log(
                "warning: no validation patches (no validation block, or none with foreground): nothing is "
                "validated, so best/ is not chosen by validation and no comparison with bicubic is made; "
                "give a larger region or --val-fraction above 0"
            )

    def _init_from(self, source: str) -> None:
        """Start from a checkpoint's generator weights; its network must match this run's."""
        from mfpi_deploy.checkpoint import load_checkpoint
        from mfpi_deploy.checkpoint.default import resolve_checkpoint

        ckpt = load_checkpoint(resolve_checkpoint(source))
        if ckpt.card.architecture != self.cfg.arch or ckpt.card.config != self.model_config:
            raise MfpiError(
                f"{source}: {ckpt.card.architecture} {ckpt.card.config} does not match this run's "
                f"{self.cfg.arch} {self.model_config}"
            )
        self.gen.load_state_dict(ckpt.model.state_dict())
        self.log(f"generator initialised from {source}")

    # ---- checkpoints -------------------------------------------------------------------
    def card(self, metrics: dict[str, float]) -> ModelCard:
        return self.folder.card(
            self.cfg,
            self.model_config,
            self.data.info(self.cfg.degradation.scale),
            epochs=self.progress.epoch,
            metrics=metrics,
            commit=self.commit,
        )

    def save(self, metrics: dict[str, float]) -> None:
        """Generator checkpoint + full training state into last/."""
        tensors = {f"disc.{k}": v.detach().cpu() for k, v in self.disc.state_dict().items()}
        tg, sg = flatten_optimizer(self.opt_g, "opt_g")
        td, sd = flatten_optimizer(self.opt_d, "opt_d")
        tensors.update(tg)
        tensors.update(td)
        tensors["torch_rng"] = torch.get_rng_state()
        scalars = {"progress": dataclasses.asdict(self.progress), "opt_g": sg, "opt_d": sd}
        if self.average is not None:  # last/'s model is the average; the raw generator goes on training
            tensors.update(raw_tensors(self.gen))
            scalars["averaged_steps"] = self.average.count
        self.folder.save_last(self.model(), self.card(metrics), tensors, scalars)

    def model(self) -> torch.nn.Module:
        """The generator a run validates and saves: the weight average, else the trained weights."""
        return self.average.model(self.gen) if self.average is not None else self.gen

    def _resume(self) -> None:
        weights, tensors, scalars, last = self.folder.load_last()
        raw = raw_weights(tensors)
        where = str(last / ("train_state.safetensors" if raw else "model.safetensors"))
        load_state_strict(self.gen, raw or weights, where=where)
        if self.average is not None and raw and scalars.get("averaged_steps"):
            self.average.restore(weights, scalars["averaged_steps"])
        disc = {k[5:]: v for k, v in tensors.items() if k.startswith("disc.")}
        load_state_strict(self.disc, disc, where=str(last / "train_state.safetensors"))
        unflatten_optimizer(self.opt_g, "opt_g", tensors, scalars["opt_g"])
        unflatten_optimizer(self.opt_d, "opt_d", tensors, scalars["opt_d"])
        if "torch_rng" in tensors:
            torch.set_rng_state(tensors["torch_rng"])
        known = {f.name for f in dataclasses.fields(Progress)}
        p = {k: v for k, v in scalars["progress"].items() if k in known}
        for key in ("best_psnr", "best_margin"):
            p[key] = -math.inf if p.get(key) is None else p[key]
        plan_s = self.progress.plan_s
        self.progress = Progress(**p)
        if self.extend:  # a new plan: its budget counts from here; the run is no longer finished
            if plan_s is not None:
                self.progress.plan_s = self.progress.elapsed_s + plan_s
            self.progress.finished, self.progress.since_best = False, 0
            self.progress.next_val = math.floor(self.fraction() * self.cfg.validations) + 1
        self.log(
            f"resumed {self.out} at epoch {self.progress.epoch}, step {self.progress.step_in_epoch}, "
            f"{100 * self.fraction():.0f}% of the planned run done"
        )

    # ---- data ----------------------------------------------------------------------------
    def epoch_plan(self, epoch: int) -> tuple[list, np.ndarray]:
        """The patches and flip/rotation codes of an epoch: a function of (seed, epoch) only,
        so a resumed run sees exactly the batches it would have seen."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, epoch])
        patches = draw(self.data.train, cfg.steps_per_epoch * cfg.batch, rng)
        codes = rng.integers(0, 8, size=len(patches)) if cfg.augment else np.zeros(len(patches), int)
        return patches, codes

    def batch(self, patches, codes) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data.batch(patches, codes, self.cfg.degradation)
        return x.to(self.device), y.to(self.device)

    def plane_pairs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deep-Z's training pairs: each sample's input with the DPM of one random target plane, and
        that plane (drawn from torch's generator, which last/ saves, so a resume draws the same)."""
        k = torch.randint(self.cfg.planes, (len(x),))
        values = torch.tensor(stack_dpm_values(self.cfg.planes))[k]
        target = y.unflatten(1, (self.cfg.planes, self.channels))[torch.arange(len(x)), k.to(y.device)]
        return with_dpm(x, values), target

    # ---- one step ------------------------------------------------------------------------
    def fraction(self) -> float:
        """Share of the planned run done (steps or time budget, whichever is further)."""
        p = self.progress
        return run_fraction(p.global_step, self.cfg.planned_steps(), p.elapsed_s, p.plan_s)

    def gan_active(self) -> bool:
        cfg = self.cfg
        return (
            cfg.adv_weight > 0
            and self.progress.epoch >= cfg.warmup_epochs
            and self.schedule.adversarial(self.fraction())
        )

    def set_lr(self) -> float:
        lr = self.schedule.lr(self.fraction(), self.progress.epoch)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def step(self, x: torch.Tensor, y: torch.Tensor, gan: bool) -> dict[str, float]:
        """One optimisation step of G (and of D when the adversarial term is on)."""
        self.gen.train()
        if self.deepz:
            x, y = self.plane_pairs(x, y)
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
        if self.average is not None and self.fraction() >= self.cfg.lr_warmup:
            self.average.update(self.gen)
        if gan:
            fake = fake.detach().clamp(0.0, 1.0)  # D judges what the generator outputs in use
            real = self.disc.logits(y)
            fake_d = self.disc.logits(fake)
            loss_d = F.binary_cross_entropy_with_logits(
                real, torch.ones_like(real)
            ) + F.binary_cross_entropy_with_logits(fake_d, torch.zeros_like(fake_d))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            out["d"] = float(loss_d.detach())
        return out

    # ---- validation ----------------------------------------------------------------------
    def validate(self) -> Validation | None:
        """Per-plane PSNR of the model, bicubic and the in-focus copy on the validation patches."""
        val = self.data.val
        if not val:
            return None
        size = max(self.cfg.batch, 8)
        chunks = (
            self.batch(val[i : i + size], np.zeros(len(val[i : i + size]), int)) for i in range(0, len(val), size)
        )
        model = self.model()
        return validate(
            DeepZStack(model, self.cfg.planes) if self.deepz else model,  # the whole stack (Deep-Z: a pass per plane)
            chunks,
            planes=self.cfg.planes,
            channels=self.channels,
            centre=self.data.centre,
            scale=self.cfg.degradation.scale,
        )

    # ---- loop ----------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Train until the plan is done. Ctrl-C or SIGTERM (a batch scheduler's stop signal) saves
        the state at the current step, then re-raises."""
        with sigterm_as_interrupt():
            return self._run()

    def _stop_reason(self, session_start: float) -> str:
        """Why the run stops now ("" to go on): the plan is done (steps, or its time budget), or this
        sitting's limit is reached."""
        p = self.progress
        if self.fraction() >= 1.0:
            out_of_time = p.plan_s is not None and p.elapsed_s >= p.plan_s
            return "time budget" if out_of_time and p.global_step < self.cfg.planned_steps() else "done"
        if self.session_limit_s is not None and self.clock() - session_start >= self.session_limit_s:
            return "session limit"
        return ""

    def _run(self) -> RunResult:
        cfg, p = self.cfg, self.progress
        session_start = self.clock()
        start = session_start - p.elapsed_s  # elapsed_s is cumulative over resumes
        cpu_start = time.process_time() - p.cpu_s
        stopped = "done" if p.finished else self._stop_reason(session_start)
        lr, gan = self.set_lr(), self.gan_active()
        try:
            while not stopped:
                patches, codes = self.epoch_plan(p.epoch)  # a function of (seed, epoch): mid-epoch re-entry is exact
                bar = tqdm(
                    range(p.step_in_epoch, cfg.steps_per_epoch),
                    desc=f"epoch {p.epoch + 1}/{cfg.epochs}",
                    initial=p.step_in_epoch,
                    total=cfg.steps_in_epoch(p.epoch),
                    leave=True,
                    mininterval=5.0,
                )
                for s in bar:
                    lr = self.set_lr()
                    gan = self.gan_active()
                    sl = slice(s * cfg.batch, (s + 1) * cfg.batch)
                    losses = self.step(*self.batch(patches[sl], codes[sl]), gan)
                    for k, v in losses.items():
                        p.sums[k] = p.sums.get(k, 0.0) + v
                    p.sums["n"] = p.sums.get("n", 0.0) + 1
                    p.step_in_epoch, p.global_step = s + 1, p.global_step + 1
                    p.elapsed_s, p.cpu_s = self.clock() - start, time.process_time() - cpu_start
                    bar.set_postfix(
                        {"lr": f"{lr:.2g}", **{k: f"{v / p.sums['n']:.4f}" for k, v in p.sums.items() if k != "n"}},
                        refresh=False,
                    )
                    stopped = self._stop_reason(session_start)
                    if stopped or self.fraction() >= p.next_val / cfg.validations:
                        break
                bar.close()
                if p.step_in_epoch == cfg.steps_per_epoch:
                    p.epoch, p.step_in_epoch = p.epoch + 1, 0
                p.next_val = math.floor(self.fraction() * cfg.validations) + 1
                improved = self._validate_and_save(lr, gan)
                p.since_best = 0 if improved else p.since_best + 1
                if not stopped and cfg.patience and p.since_best >= cfg.patience:
                    stopped = "early stop"
                    self.log(
                        f"early stop: {p.since_best} validations without a better best/ (patience {cfg.patience}); "
                        f"best/ from epoch {p.best_epoch:g}"
                    )
            p.finished = stopped in ("done", "early stop")
            if p.finished:
                self.save(self._metrics())
        except KeyboardInterrupt:
            p.elapsed_s = self.clock() - start
            self.save(self._metrics())
            self.log(f"interrupted: state saved to {self.out / 'last'} (resume with --resume)")
            raise
        if stopped == "time budget":
            self.log(
                f"time budget of {cfg.max_minutes} min used: stopped at epoch {p.epoch}, step {p.step_in_epoch}; "
                f"state saved to {self.out / 'last'}"
            )
        elif stopped == "session limit":
            self.log(f"session limit reached: state saved to {self.out / 'last'}; --resume continues the plan")
        best = self._best_validation()
        if best is not None:
            self.log(summary_line(best, p))
        return RunResult(self.out, p, stopped, best)

    def _metrics(self) -> dict[str, float]:
        p = self.progress
        out = {"val_psnr": p.last_val_psnr} if p.last_val_psnr is not None else {}
        return {k: round(v, 4) for k, v in out.items()}

    def _validate_and_save(self, lr: float, gan: bool) -> bool:
        """Score the validation patches, log, save last/ (and best/ when it improved); True if it did."""
        p = self.progress
        val = self.validate()
        p.last_val_psnr = None if val is None else val.mean
        n = max(p.sums.get("n", 0.0), 1.0)
        record = {
            "epoch": round(p.epoch + p.step_in_epoch / self.cfg.steps_per_epoch, 4),
            "global_step": p.global_step,
            "elapsed_s": round(p.elapsed_s, 1),
            "cpu_s": round(p.cpu_s, 1),
            "lr": lr,
            "gan": gan,
            **{f"loss_{k}": round(v / n, 6) for k, v in p.sums.items() if k != "n"},
            **(val.to_dict() if val is not None else {"val_psnr": None}),
        }
        p.sums = {}
        metrics = self._metrics()
        if val is not None:
            metrics["val_margin_db"] = round(val.margin, 4)
        improved = val is None or val.margin > p.best_margin
        if improved:
            if val is not None:
                p.best_margin, p.best_psnr, p.best_epoch = val.margin, val.mean, record["epoch"]
                p.best_planes = dataclasses.asdict(val)
            self.folder.save_best(self.model(), self.card(metrics))
        self.save(metrics)
        if self.cfg.snapshots:
            self.folder.save_snapshot(self.model(), self.card(metrics), p.global_step)
        self.folder.append_log(record)
        below = val.below_bicubic() if val is not None else []
        self.log(
            f"epoch {record['epoch']:g}: "
            + ", ".join(
                f"{k} {v}" for k, v in record.items() if k.startswith("loss_") or k in ("val_psnr", "val_margin_db")
            )
            + (f"; below bicubic on plane(s) {below}" if below else "")
        )
        return improved

    def _best_validation(self) -> Validation | None:
        planes = self.progress.best_planes
        return Validation(**planes) if planes else None


def start_deepz_at_mid_grey(gen: torch.nn.Module) -> None:
    """Deep-Z's last layer is a conv + ReLU: from a random start its output is far off, and within a few
    steps the ReLU can die (every output 0, no gradient: the run never learns). Starting that conv at
    zero weights and a bias of 0.5 makes every plane mid-grey, inside the ReLU's live range; its
    weights get gradients from the first step."""
    with torch.no_grad():
        gen.out[0].weight.zero_()
        gen.out[0].bias.fill_(0.5)


def summary_line(val: Validation, p: Progress) -> str:
    """The closing line about best/: its margin over bicubic, and plainly any plane below it."""
    below = val.below_bicubic()
    verdict = (
        "above bicubic on every plane"
        if not below
        else f"BELOW bicubic on plane(s) {below} (of {len(val.model)}): more data or a longer budget may help"
    )
    return (
        f"best/ (epoch {p.best_epoch:g}): validation PSNR {val.mean:.2f} dB, {val.margin:+.2f} dB over bicubic "
        f"summed over planes; {verdict}"
    )


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print, clock: Clock = time.monotonic) -> RunResult:
    """Start a new run in cfg.out and train it (the Python API of `mfpi-train`)."""
    return Trainer(cfg, log=log, clock=clock).run()


def resume(
    out: str | Path,
    *,
    extend: bool = False,
    epochs: int | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    log: Callable[[str], None] = print,
    clock: Clock = time.monotonic,
) -> RunResult:
    """Continue the run in `out` with its saved config and plan. max_minutes limits this sitting
    (it stops cleanly, the plan unchanged, and can be resumed again). With extend=True the plan
    changes instead: epochs or max_steps replace the planned steps, max_minutes becomes a new
    budget from here, and the rest of the schedule is planned over it."""
    cfg = TrainConfig.read(Path(out) / "config.json")
    cfg.out = str(out)
    if not extend:
        if epochs is not None or max_steps is not None:
            raise MfpiError("--resume continues the saved plan; add --extend to change its epochs or steps")
        cfg.max_minutes = None
        return Trainer(cfg, resume=True, session_limit_s=_seconds(max_minutes), log=log, clock=clock).run()
    if epochs is not None:
        cfg.epochs, cfg.max_steps = epochs, None
    if max_steps is not None:
        cfg.max_steps = max_steps
        cfg.epochs = math.ceil(max_steps / cfg.steps_per_epoch)
    cfg.max_minutes = max_minutes
    return Trainer(cfg, resume=True, extend=True, log=log, clock=clock).run()


def _seconds(minutes: float | None) -> float | None:
    return None if minutes is None else minutes * 60
