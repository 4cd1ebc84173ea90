from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mfpi_deploy.checkpoint import load_checkpoint
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import stack_dpm_values
from training.config import TrainConfig
from training.trainer import Trainer, resume, train


def _cfg(sim_path, out, **kw) -> TrainConfig:
    base = dict(
        data=[str(sim_path)],
        out=str(out),
        planes=5,
        focus="middle",
        width=4,
        disc_width=4,
        patch=64,
        batch=2,
        epochs=2,
        steps_per_epoch=3,
        block=96,
        val_fraction=0.25,
        val_patches=4,
        validations=1,  # validate at epoch ends only
        patience=0,
        adv_weight=0.01,  # the adversarial phase is opt-in; these tests check it when on
        warmup_epochs=1,
        lr=1e-3,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_lower_the_loss(sim_path, tmp_path):
    t = Trainer(_cfg(sim_path, tmp_path / "run", lr=3e-3, model="paper"), log=lambda m: None)
    patches, codes = t.epoch_plan(0)
    x, y = t.batch(patches[:2], codes[:2])
    losses = [t.step(x, y, gan=False)["l1"] for _ in range(15)]
    assert np.mean(losses[-3:]) < 0.75 * losses[0]
    out = t.step(x, y, gan=True)
    assert set(out) == {"l1", "adv", "d"} and all(np.isfinite(v) for v in out.values())


def test_the_default_residual_form_learns_to_beat_bicubic(sim_path, tmp_path):
    """The residual form is bicubic + a correction that starts at zero, so its first L1 is bicubic's.
    Learning means the correction lowers the L1 below bicubic's on the batch it fits and stays there:
    a form whose correction gets no gradient stays at bicubic's L1 exactly, one that diverges goes above."""
    t = Trainer(_cfg(sim_path, tmp_path / "run", lr=3e-3), log=lambda m: None)
    assert t.cfg.model == "residual"  # the default
    start = t.validate()
    # bicubic before any step, up to float32 rounding: the network's in-graph bicubic and validation's
    # interpolation sum in different orders (seen: 7e-5 dB apart); a learned change moves it by far more
    assert start.model == pytest.approx(start.bicubic, abs=1e-3)
    patches, codes = t.epoch_plan(0)
    x, y = t.batch(patches[:2], codes[:2])
    losses = [t.step(x, y, gan=False)["l1"] for _ in range(60)]
    bicubic_l1 = losses[0]  # the step's loss is measured before its update: the correction is still zero
    assert all(loss < bicubic_l1 for loss in losses[-5:]), losses


def test_run_folder_checkpoints_and_logs(sim_path, tmp_path):
    cfg = _cfg(sim_path, tmp_path / "run", command="test", schedule="step", lr_halve_every=10, adv_start=0.0)
    result = train(cfg, log=lambda m: None)
    out = tmp_path / "run"
    assert result.stopped == "done" and result.progress.epoch == 2
    ckpt = load_checkpoint(out / "best")
    assert ckpt.card.planes_um == [-5.4, -2.7, 0.0, 2.7, 5.4]
    assert ckpt.card.config == {"in_channels": 3, "planes": 5, "width": 4, "residual": True}
    assert ckpt.card.input_pixel_size_um == pytest.approx(0.486)
    assert ckpt.card.provenance.command == "test" and "val_margin_db" in ckpt.card.provenance.metrics
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:  # the baselines are scored on the same validation patches, per plane
        assert len(r["val_psnr_planes"]) == len(r["val_bicubic_planes"]) == 5
        margin = sum(m - b for m, b in zip(r["val_psnr_planes"], r["val_bicubic_planes"]))
        assert r["val_margin_db"] == pytest.approx(margin, abs=0.01)
        assert r["val_below_bicubic"] == [
            i for i, (m, b) in enumerate(zip(r["val_psnr_planes"], r["val_bicubic_planes"])) if m < b
        ]
        assert r["val_focus_copy_planes"][2] is None  # the in-focus plane copied is exact (inf)
    assert records[0]["gan"] is False and records[1]["gan"] is True and "loss_d" in records[1]
    assert records[0]["lr"] == 1e-3 and records[1]["lr"] == 1e-3
    assert (out / "log.csv").read_text().count("\n") == 3
    assert TrainConfig.read(out / "config.json").patch == 64
    with pytest.raises(MfpiError, match="already holds a run"):
        Trainer(_cfg(sim_path, out), log=lambda m: None)


@pytest.mark.parametrize("arch", ["mfpinet", "deepz"])  # Deep-Z also draws its target planes from saved state
def test_resume_after_interrupt_continues_exactly(sim_path, tmp_path, monkeypatch, arch):
    straight = tmp_path / "straight"
    recipe = dict(lr_halve_every=1, schedule="step", adv_start=0.0, arch=arch)
    train(_cfg(sim_path, straight, **recipe), log=lambda m: None)

    broken = tmp_path / "broken"
    calls = {"n": 0}
    original = Trainer.step

    def interrupting(self, x, y, gan):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2, second step: mid-epoch, with the GAN on
            raise KeyboardInterrupt
        return original(self, x, y, gan)

    monkeypatch.setattr(Trainer, "step", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(sim_path, broken, **recipe), log=lambda m: None)
    monkeypatch.setattr(Trainer, "step", original)
    state = json.loads((broken / "last" / "train_state.json").read_text())
    assert state["progress"]["epoch"] == 1 and state["progress"]["step_in_epoch"] == 1
    result = resume(broken, log=lambda m: None)
    assert result.stopped == "done" and result.progress.global_step == 6
    a = load_file(str(straight / "last" / "model.safetensors"))
    b = load_file(str(broken / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = load_file(str(straight / "last" / "train_state.safetensors"))
    sb = load_file(str(broken / "last" / "train_state.safetensors"))
    assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa if k != "torch_rng")
    last = json.loads((broken / "last" / "train_state.json").read_text())
    assert last["opt_g"]["param_groups"][0]["lr"] == pytest.approx(5e-4)  # the last step was in epoch 2: halved once


def test_time_budget_stops_cleanly(sim_path, tmp_path):
    result = train(_cfg(sim_path, tmp_path / "run", max_minutes=1e-6), log=lambda m: None)
    assert result.stopped == "time budget" and result.progress.global_step == 1
    assert (tmp_path / "run" / "last" / "model.safetensors").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(MfpiError, match="no config.json"):
        resume(tmp_path / "empty", log=lambda m: None)


def test_init_from_checkpoint(sim_path, tmp_path):
    first = tmp_path / "first"
    train(_cfg(sim_path, first, epochs=1), log=lambda m: None)
    t = Trainer(_cfg(sim_path, tmp_path / "second", init=str(first / "best")), log=lambda m: None)
    saved = load_file(str(first / "best" / "model.safetensors"))
    assert all(torch.equal(t.gen.state_dict()[k], v) for k, v in saved.items())
    assert "initialised from" in t.card({}).provenance.source
    with pytest.raises(MfpiError, match="does not match"):
        Trainer(_cfg(sim_path, tmp_path / "third", init=str(first / "best"), width=8), log=lambda m: None)


def test_device_choice():
    from training.trainer import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(MfpiError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MfpiError, match="no CUDA"):
            resolve_device("cuda")


class FakeClock:
    """A clock that moves `tick` seconds each time it is read (one read per training step)."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_schedule_is_planned_over_the_time_budget(sim_path, tmp_path):
    """A 2-minute budget: the run stops when it is used, and the lr decays to the floor right then."""
    cfg = _cfg(
        sim_path,
        tmp_path / "run",
        epochs=100,
        steps_per_epoch=10,
        max_minutes=2.0,
        lr=1e-3,
        warmup_epochs=0,
        adv_start=0.9,
    )
    result = train(cfg, log=lambda m: None, clock=FakeClock(5.0))  # 5 s per step: 24 steps fill 2 minutes
    p = result.progress
    assert result.stopped == "time budget" and p.global_step == 24 and p.elapsed_s == pytest.approx(120.0)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records] == [10, 20, 24]
    schedule = cfg.lr_schedule()
    assert records[-1]["lr"] == pytest.approx(schedule.lr(115 / 120, 2))  # the lr of the last step
    assert records[-1]["lr"] < 0.02 * cfg.lr  # at the floor when the budget ends
    assert schedule.lr(1.0, 0) == pytest.approx(cfg.lr * cfg.lr_final)
    assert [r["gan"] for r in records] == [False, False, True]  # adversarial only in the last tenth


def test_best_is_chosen_by_margin_over_bicubic_and_shortfalls_are_named(sim_path, tmp_path, monkeypatch):
    from training.validation import Validation

    margins = iter([(1.0, 0.5), (3.0, -0.5), (1.0, 1.0)])  # per-plane differences to bicubic, epochs 1..3

    def fake_validate(self):
        first, second = next(margins)
        bic = [30.0] * 5
        return Validation([30.0 + first, 30.0 + second, 31.0, 30.0, 30.0], bic, [20.0, 25.0, float("inf"), 25.0, 20.0])

    monkeypatch.setattr(Trainer, "validate", fake_validate)
    logs: list[str] = []
    result = train(_cfg(sim_path, tmp_path / "run", epochs=3, steps_per_epoch=1), log=logs.append)
    assert result.progress.best_epoch == 2 and result.progress.best_margin == pytest.approx(3.0 - 0.5 + 1.0)
    best = load_checkpoint(tmp_path / "run" / "best")
    assert best.card.provenance.epochs == 2 and best.card.provenance.metrics["val_margin_db"] == pytest.approx(3.5)
    assert any("below bicubic on plane(s) [1]" in line for line in logs)
    assert "BELOW bicubic on plane(s) [1] (of 5)" in logs[-1]


def test_deepz_baseline_trains_on_one_target_plane_per_sample(sim_path, tmp_path):
    """--arch deepz: the input with the DPM of a random plane, that plane as the target; validation
    and best/ score the whole stack (one pass per plane) like MFPINet's."""
    cfg = _cfg(sim_path, tmp_path / "pairs", arch="deepz", adv_start=0.0, schedule="step", lr_halve_every=10)
    assert TrainConfig(data=[], arch="deepz").width == 48 and TrainConfig(data=[]).width == 64  # the paper's
    t = Trainer(cfg, log=lambda m: None)
    with torch.no_grad():  # starts mid-grey (a live output ReLU), whatever the input
        assert torch.all(t.gen(torch.rand(1, 4, 32, 32)) == 0.5)
    patches, codes = t.epoch_plan(0)
    x, y = t.batch(patches[:6], codes[:6])
    xd, yd = t.plane_pairs(x, y)
    assert xd.shape == (6, 4, 32, 32) and yd.shape == (6, 3, 64, 64)
    assert torch.equal(xd[:, :3], x)
    values = stack_dpm_values(5)
    for i in range(6):
        k = int(np.argmin([abs(v - float(xd[i, 3, 0, 0])) for v in values]))
        assert torch.all(xd[i, 3] == xd[i, 3, 0, 0])  # a constant channel
        assert torch.equal(yd[i], y[i, 3 * k : 3 * k + 3])

    result = train(dataclasses.replace(cfg, out=str(tmp_path / "run")), log=lambda m: None)
    assert result.stopped == "done"
    ckpt = load_checkpoint(tmp_path / "run" / "best")
    assert ckpt.card.architecture == "deepz" and ckpt.card.config == {"in_channels": 4, "width": 4, "scale": 2}
    assert ckpt.card.planes_um == [-5.4, -2.7, 0.0, 2.7, 5.4]
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(len(r["val_psnr_planes"]) == 5 for r in records)
    assert records[1]["gan"] is True and "loss_d" in records[1]  # D judges single planes
    with pytest.raises(MfpiError, match="unknown architecture"):
        TrainConfig(data=[], arch="unet")


def test_default_learning_rate_shrinks_with_width():
    assert TrainConfig(data=[], width=32).lr == 5e-4 and TrainConfig(data=[], width=16).lr == 5e-4
    assert TrainConfig(data=[]).lr == pytest.approx(2.5e-4)  # the paper's width 64
    assert TrainConfig(data=[], arch="deepz").lr == 1e-4
    assert TrainConfig(data=[], lr=3e-3).lr == 3e-3


def test_defaults_train_with_l1_alone(sim_path, tmp_path):
    defaults = {f: getattr(TrainConfig(data=[]), f) for f in ("adv_weight", "disc_width")}
    assert defaults == {"adv_weight": 0.0, "disc_width": 64}  # opt-in GAN; the paper's width when on
    result = train(_cfg(sim_path, tmp_path / "run", adv_weight=defaults["adv_weight"], adv_start=0.0), log=print)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert result.stopped == "done" and not any(r["gan"] or "loss_d" in r for r in records)


def test_validations_spread_over_the_plan_and_patience_stops_early(sim_path, tmp_path, monkeypatch):
    """10 validations over a 20-step plan (one every 2 steps, plus epoch ends); with patience 2 the run
    stops after two validations in a row that do not beat best/, keeping the best one."""
    from training.validation import Validation

    margins = iter([1.0, 2.0, 1.5, 1.8, 5.0, 5.0])

    def fake_validate(self):
        m = next(margins)
        return Validation([30.0 + m] + [30.0] * 4, [30.0] * 5, [20.0] * 5)

    monkeypatch.setattr(Trainer, "validate", fake_validate)
    cfg = _cfg(sim_path, tmp_path / "run", epochs=2, steps_per_epoch=10, validations=10, patience=2)
    result = train(cfg, log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records] == [2, 4, 6, 8]  # the 4th validation is the 2nd without a gain
    assert result.stopped == "early stop" and result.progress.best_epoch == pytest.approx(0.4)
    assert result.progress.finished
    assert resume(tmp_path / "run", log=lambda m: None).progress.global_step == 8  # a finished run stays finished


def test_max_steps_plans_in_steps(sim_path, tmp_path):
    cfg = _cfg(sim_path, tmp_path / "run", max_steps=7, steps_per_epoch=3, epochs=100)
    assert cfg.epochs == 3 and cfg.planned_steps() == 7
    result = train(cfg, log=lambda m: None)
    assert result.stopped == "done" and result.progress.global_step == 7
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["lr"] == pytest.approx(cfg.lr_schedule().lr(6 / 7, 2))  # the schedule spans the 7 steps


def test_resume_keeps_the_plan_and_minutes_limit_the_sitting(sim_path, tmp_path, monkeypatch):
    """--resume --max-minutes M: this sitting stops after M minutes, the plan (and so the lr) unchanged;
    --extend with a new budget replans the rest of the run over it."""
    cfg = _cfg(sim_path, tmp_path / "run", epochs=100, steps_per_epoch=10, max_minutes=2.0, lr=1e-3)
    original, calls = Trainer.step, {"n": 0}

    def interrupting(self, x, y, gan):
        calls["n"] += 1
        if calls["n"] == 7:  # stopped after 6 steps of the 24 the budget holds
            raise KeyboardInterrupt
        return original(self, x, y, gan)

    monkeypatch.setattr(Trainer, "step", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda m: None, clock=FakeClock(5.0))
    monkeypatch.setattr(Trainer, "step", original)
    state = json.loads((tmp_path / "run" / "last" / "train_state.json").read_text())["progress"]
    planned = state["plan_s"]
    assert planned == 120.0
    result = resume(tmp_path / "run", max_minutes=0.5, log=lambda m: None, clock=FakeClock(5.0))
    p = result.progress
    assert result.stopped == "session limit" and p.plan_s == planned  # the plan is the original one
    assert p.elapsed_s < planned and p.global_step < 24
    result = resume(tmp_path / "run", log=lambda m: None, clock=FakeClock(5.0))
    assert result.stopped == "time budget" and result.progress.elapsed_s == pytest.approx(planned, abs=5.0)
    extended = resume(tmp_path / "run", extend=True, max_minutes=1.0, log=lambda m: None, clock=FakeClock(5.0))
    assert extended.progress.plan_s == pytest.approx(result.progress.elapsed_s + 60.0)
    with pytest.raises(MfpiError, match="add --extend"):
        resume(tmp_path / "run", epochs=200, log=lambda m: None)


def test_snapshots_keep_every_validated_generator(sim_path, tmp_path):
    cfg = _cfg(sim_path, tmp_path / "run", max_steps=6, steps_per_epoch=3, epochs=100, validations=3, snapshots=True)
    train(cfg, log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    snaps = sorted((tmp_path / "run" / "snapshots").iterdir())
    assert [p.name for p in snaps] == [f"step-{r['global_step']:07d}" for r in records]
    last, first = load_checkpoint(tmp_path / "run" / "last"), load_checkpoint(snaps[0])
    final = load_checkpoint(snaps[-1])
    for name, weight in last.model.state_dict().items():
        assert torch.equal(final.model.state_dict()[name], weight)  # the last validation's generator is last/'s
    assert any(not torch.equal(first.model.state_dict()[k], v) for k, v in last.model.state_dict().items())


def test_a_run_without_validation_patches_says_so(sim_path, tmp_path):
    logs: list[str] = []
    t = Trainer(_cfg(sim_path, tmp_path / "run", val_fraction=0.0), log=logs.append)
    assert not t.data.val and t.validate() is None
    assert any(m.startswith("warning: no validation patches") for m in logs)
    assert not any("plane steps" in m and m.startswith("warning") for m in logs)  # the sim stack records z
    logs.clear()
    Trainer(_cfg(sim_path, tmp_path / "run2"), log=logs.append)
    assert not any("no validation patches" in m for m in logs)


def test_a_stack_without_z_spacing_warns_that_offsets_are_plane_steps(sim_path, tmp_path):
    import tifffile

    plain = tmp_path / "plain.tif"  # the same planes, no OME metadata: no z positions
    tifffile.imwrite(plain, tifffile.imread(sim_path), photometric="rgb", metadata={"axes": "ZYXS"})
    logs: list[str] = []
    Trainer(_cfg(plain, tmp_path / "run"), log=logs.append)
    assert any(m.startswith("warning: the stack records no z spacing") for m in logs), logs
    logs.clear()
    Trainer(_cfg(plain, tmp_path / "run2", z_step_um=2.7), log=logs.append)
    assert not any("records no z spacing" in m for m in logs)


def test_a_model_trained_in_plane_steps_says_so_down_to_its_outputs(sim_path, tmp_path):
    """A stack without z spacing: the card records plane steps, and mfpi-run's output gives no
    micrometres for z (OME-TIFF: no PhysicalSizeZ, PositionZ in OME's unit-less reference frame)."""
    import tifffile
    from click.testing import CliRunner

    from mfpi_deploy.cli.run import main as run_main
    from mfpi_deploy.output.reader import StackReader

    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, tifffile.imread(sim_path), photometric="rgb", metadata={"axes": "ZYXS"})
    train(_cfg(plain, tmp_path / "run", epochs=1, steps_per_epoch=1), log=lambda m: None)
    card_text = (tmp_path / "run" / "last" / "card.json").read_text()
    card = load_checkpoint(tmp_path / "run" / "last").card
    assert card.z_in_steps and card.planes_um == [-2.0, -1.0, 0.0, 1.0, 2.0] and '"z_in_steps": true' in card_text
    slide = tmp_path / "slide.tif"
    tifffile.imwrite(slide, tifffile.imread(sim_path)[2, :48, :64], photometric="rgb")
    out = tmp_path / "slide.mfp.ome.tif"
    args = [str(slide), "--engine", str(tmp_path / "run" / "last"), "--backend", "torch", "--threads", "1", "--quiet"]
    result = CliRunner().invoke(run_main, args)
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(out) as tif:
        xml = tif.ome_metadata
    assert "PhysicalSizeZ" not in xml and 'PositionZUnit="reference frame"' in xml and 'PositionZUnit="µm"' not in xml
    with StackReader(out) as stack:
        assert stack.z_in_steps and stack.planes_um == (-2.0, -1.0, 0.0, 1.0, 2.0)
    # a stack with z spacing keeps micrometres, and its card does not mention steps at all
    train(_cfg(sim_path, tmp_path / "run2", epochs=1, steps_per_epoch=1), log=lambda m: None)
    assert "z_in_steps" not in (tmp_path / "run2" / "last" / "card.json").read_text()
