"""Checkpoints: weights in safetensors plus a JSON model card. Loading never unpickles.

A checkpoint is either a folder holding `model.safetensors` and `card.json`, or a pair
`NAME.safetensors` + `NAME.json` side by side.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from mfpi_deploy.checkpoint.card import CARD_NAME, WEIGHTS_NAME, ModelCard
from mfpi_deploy.errors import CheckpointError
from mfpi_deploy.models.factory import create_model


@dataclass(frozen=True)
class CheckpointPaths:
    weights: Path
    card: Path


def checkpoint_paths(path: str | Path) -> CheckpointPaths:
    """Where the weights and card of a checkpoint live, for a folder or a .safetensors path."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return CheckpointPaths(path, path.with_suffix(".json"))
    return CheckpointPaths(path / WEIGHTS_NAME, path / CARD_NAME)


@dataclass
class Checkpoint:
    """A loaded network with its card."""

    model: nn.Module
    card: ModelCard


def save_checkpoint(model: nn.Module, card: ModelCard, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write weights and card; the files appear complete or not at all (write then rename)."""
    paths = checkpoint_paths(path)
    target = Path(path)
    if not overwrite and (paths.weights.exists() or paths.card.exists()):
        raise CheckpointError(f"{target}: checkpoint exists (pass overwrite to replace it)")
    paths.weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmpdir = Path(tempfile.mkdtemp(prefix=".ckpt-", dir=paths.weights.parent))
    try:
        save_file(tensors, str(tmpdir / "w"), metadata={"architecture": card.architecture})
        (tmpdir / "c").write_text(card.to_json())
        os.replace(tmpdir / "w", paths.weights)
        os.replace(tmpdir / "c", paths.card)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return target


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint of ours strictly; every failure is a one-line CheckpointError."""
    paths = checkpoint_paths(path)
    if not Path(path).exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if not paths.weights.is_file():
        if Path(path).is_dir() and not any(Path(path).iterdir()):
            raise CheckpointError(f"{path}: empty folder, neither a checkpoint nor an exported engine folder")
        raise CheckpointError(f"{path}: weights file {paths.weights.name} not found")
    card = ModelCard.read(paths.card)
    check_weights_fit_card(paths.weights, card)  # before any model is built: a card can ask for any size
    try:
        state = load_file(str(paths.weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{paths.weights}: corrupt weights file ({exc})") from None
    model = create_model(card.architecture, **card.config)
    load_state_strict(model, state, where=str(paths.weights))
    model.to(device).eval()
    return Checkpoint(model, card)


def weight_shapes(weights: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors file's header (no tensor is read)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: corrupt weights file ({exc})") from None


def check_weights_fit_card(weights: str | Path, card: ModelCard) -> None:
    """Refuse weights whose names or shapes do not match the network the card describes.

    The network is built on the meta device (shapes only, no memory), so a card asking for
    a network far larger than its weights is refused instead of allocated.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in create_model(card.architecture, **card.config).state_dict().items()}
    problems = _key_problems(expected, weight_shapes(weights), shaped_shown=3)
    if problems:
        raise CheckpointError(
            f"{weights}: does not fit the {card.architecture} its card describes "
            f"({_config_text(card.config)}); " + "; ".join(problems)
        )


def _config_text(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], *, where: str) -> None:
    """load_state_dict(strict=True), but naming missing, extra and mis-shaped keys in one line."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = _key_problems(expected, {k: tuple(v.shape) for k, v in state.items()})
    if problems:
        raise CheckpointError(f"{where}: does not fit {type(model).__name__}; " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def _key_problems(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], *, shaped_shown: int = 8
) -> list[str]:
    """Missing, unexpected and mis-shaped keys of a state dict, one phrase each (none: it fits)."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    shaped = [f"{k} {found[k]} != {v}" for k, v in expected.items() if k in found and found[k] != v]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if extra:
        problems.append(f"unexpected keys: {_listing(extra)}")
    if shaped:
        problems.append(f"mis-shaped keys: {_listing(shaped, shaped_shown)}")
    return problems


def _listing(items: list[str], most: int = 8) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" (+{len(items) - most} more)" if len(items) > most else "")
