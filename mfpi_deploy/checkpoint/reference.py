"""Import the authors' released PyTorch checkpoints (.pth) into our format, safely.

The file is read with `torch.load(weights_only=True)`: tensors and plain containers only,
so a file carrying pickled code is refused instead of executed.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from mfpi_deploy.checkpoint.card import ModelCard, Provenance
from mfpi_deploy.checkpoint.io import Checkpoint, load_state_strict
from mfpi_deploy.errors import CheckpointError
from mfpi_deploy.fileio import file_sha256
from mfpi_deploy.models.factory import Architecture, create_model

# Wrappers seen around state dicts in training scripts; DataParallel adds "module.".
_NESTED_KEYS = ("state_dict", "model", "generator", "netG", "G")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a .pth state dict, unwrapped; refuses pickled objects other than tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a PyTorch checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about legacy pickle protocols before refusing them
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(str(exc))
        if not _looks_like_torch_file(path):
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail[:160]})") from None
        raise CheckpointError(
            f"{path}: refused, the file holds pickled content other than tensors ({detail[:160]})"
        ) from None
    except Exception as exc:  # bytes that are no checkpoint fail anywhere in the loader (KeyError, IndexError, ...)
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        if not any(c.isalpha() for c in first):  # KeyError: 101 says nothing without its type
            first = f"{type(exc).__name__} {first}".strip()
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    for key in _NESTED_KEYS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _looks_like_torch_file(path: Path) -> bool:
    """A zip archive (torch.save) or a pickle stream (legacy .pth), judged by the first bytes."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _unpickler_detail(message: str) -> str:
    """The informative line of torch's weights-only error ("WeightsUnpickler error: ...")."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else "unsupported content")
    return lines[0] if lines else "unsupported content"


def detect_architecture(state: dict[str, torch.Tensor]) -> tuple[Architecture, dict[str, int]]:
    """Architecture and config implied by a state dict's keys and shapes."""
    if "in_conv.weight" in state and "conv_block.2.weight" in state:
        w = state["in_conv.weight"]
        cin, width = int(w.shape[1]), int(w.shape[0])
        out = int(state["conv_block.2.weight"].shape[0])
        if out % cin:
            raise CheckpointError(f"output channels {out} are not a multiple of input channels {cin}")
        return Architecture.MFPINET, {"in_channels": cin, "planes": out // cin, "width": width}
    if "conv11.0.weight" in state and "conv12.0.weight" in state:
        return Architecture.DEEPZ, {
            "in_channels": int(state["conv11.0.weight"].shape[1]),
            "width": int(state["conv12.0.weight"].shape[0]),
        }
    if "block1.0.weight" in state and "fc.0.weight" in state:
        w = state["block1.0.weight"]
        return Architecture.MFPINET_DISCRIMINATOR, {"in_channels": int(w.shape[1]), "width": int(w.shape[0])}
    raise CheckpointError("state dict matches no known architecture (looked for MFPINet, Deep-Z, discriminator keys)")


def import_reference(path: str | Path, architecture: str | None = None) -> Checkpoint:
    """Load an authors' .pth strictly into our model and give it a model card.

    With `architecture` given, the file must be of that architecture; otherwise it is
    detected from the keys. Any missing, extra or mis-shaped key is an error naming them.
    """
    path = Path(path)
    state = read_state_dict(path)
    arch, config = detect_architecture(state)
    if architecture is not None and Architecture.parse(architecture) != arch:
        raise CheckpointError(f"{path}: holds a {arch.value} state dict, not {architecture}")
    model = create_model(arch, **config)
    load_state_strict(model, state, where=str(path))
    card = ModelCard(
        architecture=arch.value,
        config=config,
        provenance=Provenance(source=f"imported from {path.name} (sha256 {file_sha256(path)})"),
    )
    return Checkpoint(model.eval(), card)
