from __future__ import annotations

import torch

from training.averaging import WeightAverage, raw_tensors, raw_weights
from training.trainer import Trainer

from .test_trainer import _cfg


def test_the_average_is_the_mean_of_the_updates_and_gen_stands_in_before_the_first():
    gen = torch.nn.Linear(3, 2)
    avg = WeightAverage(gen)
    assert avg.count == 0 and avg.model(gen) is gen
    seen = []
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            gen.weight.fill_(value)
        avg.update(gen)
        seen.append(value)
    assert avg.count == 3
    assert torch.allclose(avg.model(gen).weight, torch.full((2, 3), sum(seen) / 3))
    assert avg.model(gen) is not gen and gen.weight[0, 0].item() == 6.0  # the raw weights go on unchanged


def test_raw_generator_state_round_trips_through_the_training_state():
    gen = torch.nn.Linear(3, 2)
    back = raw_weights({**raw_tensors(gen), "opt_g.0.exp_avg": torch.zeros(1)})
    assert set(back) == {"weight", "bias"} and torch.equal(back["weight"], gen.weight.detach())


def test_trainer_validates_and_saves_the_average_of_the_steps_after_the_warm_up(sim_path, tmp_path):
    t = Trainer(_cfg(sim_path, tmp_path / "run", adv_weight=0.0, lr_warmup=0.5), log=lambda m: None)
    patches, codes = t.epoch_plan(0)
    x, y = t.batch(patches[:2], codes[:2])
    states = []
    for step in range(6):  # a plan of 6 steps: the first 3 are the warm-up
        t.progress.global_step = step
        t.step(x, y, gan=False)
        states.append({k: v.clone() for k, v in t.gen.state_dict().items()})
    assert t.average.count == 3
    mean = {k: sum(s[k] for s in states[3:]) / 3 for k in states[0]}
    got = t.model().state_dict()
    assert all(torch.allclose(got[k], mean[k], atol=1e-6) for k in mean)
    raw = t.gen.state_dict()
    assert any(not torch.allclose(got[k], raw[k]) for k in raw)  # the average, not the last step's weights


def test_without_averaging_the_trained_weights_are_what_is_saved(sim_path, tmp_path):
    t = Trainer(_cfg(sim_path, tmp_path / "run", average=False), log=lambda m: None)
    assert t.average is None and t.model() is t.gen
