"""Import of the authors' released .pth files: strict keys from the reference TSVs, no pickled code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from mfpi_deploy.checkpoint import import_reference, load_checkpoint, save_checkpoint
from mfpi_deploy.errors import CheckpointError

TSVS = {
    "mfpinet": "mfpinet_generator_reference_keys.tsv",
    "mfpinet_discriminator": "mfpinet_discriminator_reference_keys.tsv",
    "deepz": "deepz_generator_reference_keys.tsv",
}


def synthesise_state(tsv: Path) -> dict[str, torch.Tensor]:
    """A state dict with exactly the keys and shapes the reference TSV lists, random values."""
    state = {}
    for line in tsv.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        assert dtype == "float32"
        state[key] = 0.02 * torch.randn(tuple(int(s) for s in shape.split(",")))
    return state


@pytest.mark.parametrize("arch", list(TSVS))
def test_reference_state_dict_loads_strictly(reference_dir, tmp_path, arch):
    state = synthesise_state(reference_dir / TSVS[arch])
    torch.save(state, tmp_path / "G.pth")
    ckpt = import_reference(tmp_path / "G.pth")
    assert ckpt.card.architecture == arch
    loaded = ckpt.model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert "sha256" in ckpt.card.provenance.source


def test_reference_converts_and_round_trips(reference_dir, tmp_path):
    state = synthesise_state(reference_dir / TSVS["mfpinet"])
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "G.pth")
    ckpt = import_reference(tmp_path / "G.pth", architecture="mfpinet")
    assert ckpt.card.config == {"in_channels": 3, "planes": 11, "width": 64, "residual": False}
    save_checkpoint(ckpt.model, ckpt.card, tmp_path / "ours")
    again = load_checkpoint(tmp_path / "ours")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        y = ckpt.model(x)
        assert torch.isfinite(y).all()
        assert torch.equal(y, again.model(x))


def test_corrupted_reference_names_the_keys(reference_dir, tmp_path):
    state = synthesise_state(reference_dir / TSVS["mfpinet"])
    del state["up2.1.prelu3.weight"]
    state["extra.weight"] = torch.zeros(3)
    state["up_scale.conv.bias"] = torch.zeros(128)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        import_reference(tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing keys: up2.1.prelu3.weight" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "mis-shaped keys: up_scale.conv.bias (128,) != (256,)" in msg
    assert "\n" not in msg


def test_wrong_architecture_is_refused(reference_dir, tmp_path):
    torch.save(synthesise_state(reference_dir / TSVS["deepz"]), tmp_path / "dz.pth")
    with pytest.raises(CheckpointError, match="holds a deepz state dict, not mfpinet"):
        import_reference(tmp_path / "dz.pth", architecture="mfpinet")


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(_Evil.marker),))


def test_pickled_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"in_conv.weight": _Evil()}, f)
    torch.save({"w": torch.zeros(1), "payload": _Evil()}, tmp_path / "evil2.pth")
    for name in ("evil.pth", "evil2.pth"):
        with pytest.raises(CheckpointError, match="refused, the file holds pickled content"):
            import_reference(tmp_path / name)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        import_reference(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        import_reference(tmp_path / "missing.pth")


def test_text_and_pickled_lists_are_refused_in_one_line_without_warnings(tmp_path, recwarn):
    import pickle

    (tmp_path / "text.pth").write_text("hello world\n" * 10)  # the legacy loader fails with KeyError: 101
    (tmp_path / "list.pth").write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    for name, says in (("text.pth", r"not a readable PyTorch checkpoint \(KeyError 101\)"), ("list.pth", "pth: ")):
        with pytest.raises(CheckpointError, match=says) as err:
            import_reference(tmp_path / name)
        assert "\n" not in str(err.value)
    assert [str(w.message) for w in recwarn] == []
