"""Resumable training state: tensors in safetensors, scalars in JSON; nothing is unpickled.

Optimizer state dicts are flattened to `prefix.<param id>.<name>` tensors plus their JSON
param groups, so Adam's moments and step counts survive a resume exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mfpi_deploy.errors import MfpiError

TENSORS = "train_state.safetensors"
SCALARS = "train_state.json"


def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{prefix}.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                extra[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "extra": extra}


def unflatten_optimizer(
    opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    for key, v in scalars.get("extra", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})


def save_state(folder: Path, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    """Write both files into `folder` (which the caller then moves into place atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / TENSORS))
    (folder / SCALARS).write_text(json.dumps(scalars, indent=2) + "\n")


def load_state(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        tensors = load_file(str(folder / TENSORS))
        scalars = json.loads((folder / SCALARS).read_text())
    except FileNotFoundError as exc:
        raise MfpiError(f"{folder}: training state missing ({Path(exc.filename).name}); cannot resume") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise MfpiError(f"{folder}: corrupt training state ({str(exc).splitlines()[0][:160]})") from None
    return tensors, scalars
