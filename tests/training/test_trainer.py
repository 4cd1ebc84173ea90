from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mfpi_deploy.checkpoint import load_checkpoint
from mfpi_deploy.errors import MfpiError
from training.config import TrainConfig
from training.trainer import Trainer, resume, train


def _cfg(sim_path, out, **kw) -> TrainConfig:
    base = dict(data=[str(sim_path)], out=str(out), planes=5, focus="middle", width=4, disc_width=4, patch=64,
                batch=2, epochs=2, steps_per_epoch=3, block=96, val_fraction=0.25, val_patches=4, warmup_epochs=1,
                lr=1e-3, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_lower_the_loss(sim_path, tmp_path):
    t = Trainer(_cfg(sim_path, tmp_path / "run", lr=3e-3), log=lambda m: None)
    patches, codes = t.epoch_plan(0)
    x, y = t.batch(patches[:2], codes[:2])
    losses = [t.step(x, y, gan=False)["l1"] for _ in range(15)]
    assert np.mean(losses[-3:]) < 0.75 * losses[0]
    out = t.step(x, y, gan=True)
    assert set(out) == {"l1", "adv", "d"} and all(np.isfinite(v) for v in out.values())


def test_run_folder_checkpoints_and_logs(sim_path, tmp_path):
    result = train(_cfg(sim_path, tmp_path / "run", command="test"), log=lambda m: None)
    out = tmp_path / "run"
    assert result.stopped == "done" and result.progress.epoch == 2
    ckpt = load_checkpoint(out / "best")
    assert ckpt.card.planes_um == [-5.4, -2.7, 0.0, 2.7, 5.4]
    assert ckpt.card.config == {"in_channels": 3, "planes": 5, "width": 4}
    assert ckpt.card.input_pixel_size_um == pytest.approx(0.486)
    assert ckpt.card.provenance.command == "test" and "val_psnr" in ckpt.card.provenance.metrics
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["gan"] is False and records[1]["gan"] is True and "loss_d" in records[1]
    assert records[0]["lr"] == 1e-3 and records[1]["lr"] == 1e-3
    assert (out / "log.csv").read_text().count("\n") == 3
    assert TrainConfig.read(out / "config.json").patch == 64
    with pytest.raises(MfpiError, match="already holds a run"):
        Trainer(_cfg(sim_path, out), log=lambda m: None)


def test_resume_after_interrupt_continues_exactly(sim_path, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    train(_cfg(sim_path, straight, lr_halve_every=1), log=lambda m: None)

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
        train(_cfg(sim_path, broken, lr_halve_every=1), log=lambda m: None)
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
    assert last["opt_g"]["param_groups"][0]["lr"] == pytest.approx(2.5e-4)  # halved after each of 2 epochs


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
