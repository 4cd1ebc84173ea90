"""Checkpoint format: round trip is bit-identical, bad files give one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from mfpi_deploy.checkpoint import ModelCard, Provenance, load_checkpoint, save_checkpoint
from mfpi_deploy.checkpoint.card import z_label, z_range_label
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import CheckpointError
from mfpi_deploy.models import create_model


def _card(**config) -> ModelCard:
    return ModelCard(
        architecture="mfpinet",
        config=config,
        input_pixel_size_um=0.486,
        provenance=Provenance(data="unit test", epochs=0, metrics={"psnr": 1.5}),
    )


@pytest.mark.parametrize("layout", ["folder", "pair"])
def test_round_trip_bit_identical(tmp_path, layout):
    net = create_model("mfpinet", in_channels=3, planes=11, width=8).eval()
    path = tmp_path / ("ckpt" if layout == "folder" else "ckpt.safetensors")
    save_checkpoint(net, _card(in_channels=3, planes=11, width=8), path)
    loaded = load_checkpoint(path)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(net(x), loaded.model(x))
    assert loaded.card.config == {"in_channels": 3, "planes": 11, "width": 8, "residual": False}
    assert loaded.card.provenance.metrics == {"psnr": 1.5}
    assert loaded.card.planes_um[0] == pytest.approx(-13.5) and len(loaded.card.planes_um) == 11


def test_save_refuses_existing_unless_overwrite(tmp_path):
    net = create_model("mfpinet", width=4)
    card = _card(width=4)
    save_checkpoint(net, card, tmp_path / "c")
    with pytest.raises(CheckpointError, match="exists"):
        save_checkpoint(net, card, tmp_path / "c")
    save_checkpoint(net, card, tmp_path / "c", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["card.json", "model.safetensors"]


def test_card_rejects_wrong_plane_count_and_unknown_fields(tmp_path):
    with pytest.raises(CheckpointError, match="3 plane offsets.*11 planes"):
        ModelCard(architecture="mfpinet", config={}, planes_um=[0.0, 1.0, 2.0])
    with pytest.raises(CheckpointError, match="unknown field.*colour"):
        ModelCard.from_dict({"architecture": "mfpinet", "config": {}, "colour": "red"})


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty folder, neither a checkpoint nor an exported engine folder"):
        load_checkpoint(tmp_path / "empty")
    net = create_model("mfpinet", width=4)
    save_checkpoint(net, _card(width=4), tmp_path / "c")
    weights = tmp_path / "c" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt weights"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "card.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable model card"):
        load_checkpoint(tmp_path / "c")


def test_card_that_does_not_fit_weights_names_keys(tmp_path):
    net = create_model("mfpinet", width=4)
    save_checkpoint(net, _card(width=4), tmp_path / "c")
    card = json.loads((tmp_path / "c" / "card.json").read_text())
    card["config"]["width"] = 8
    (tmp_path / "c" / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"mis-shaped keys: in_conv.weight \(4, 3, 7, 7\) != \(8, 3, 7, 7\)"):
        load_checkpoint(tmp_path / "c")


def test_plane_steps_are_recorded_only_when_true_and_label_their_unit():
    steps = ModelCard("mfpinet", {"planes": 3}, planes_um=[-1.0, 0.0, 1.0], z_in_steps=True)
    back = ModelCard.from_dict(json.loads(steps.to_json()))
    assert back.z_in_steps and back.planes_um == [-1.0, 0.0, 1.0] and back.z_unit == "plane steps"
    plain = ModelCard("mfpinet", {"planes": 3}, planes_um=[-2.7, 0.0, 2.7])
    assert "z_in_steps" not in json.loads(plain.to_json()) and plain.z_unit == "µm"  # cards as before
    with pytest.raises(CheckpointError, match="z_in_steps must be true or false"):
        ModelCard.from_dict({**json.loads(steps.to_json()), "z_in_steps": "yes"})
    assert z_label(1.0, True) == "z +1 plane steps" and z_label(2.7) == "z +2.7 µm"
    assert z_range_label([-1.0, 0.0, 1.0], True) == "z -1..1 plane steps (3 planes)"
    spec = EngineSpec.from_card(steps)
    assert spec.z_in_steps and EngineSpec.from_dict(spec.to_dict()).z_in_steps
    assert "z_in_steps" not in EngineSpec.from_card(plain).to_dict()  # manifests and engine ids as before
