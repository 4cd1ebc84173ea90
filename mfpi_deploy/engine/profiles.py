"""Pure shape logic for engines: tile validation, optimisation profiles, buffer sizes.

TensorRT needs, per optimisation profile, min/opt/max shapes of every input; the runtime
picks the profile whose range holds a batch and sizes its buffers for the largest shapes.
All of that is arithmetic, kept here so CPU tests cover it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import InputShapeError, MfpiError
from mfpi_deploy.tiling import TileProfile

Shape = tuple[int, ...]


def validate_tiles(tiles: tuple[int, ...] | list[int], stride: int) -> None:
    """Refuse tile sides the network cannot take (not positive multiples of its stride)."""
    if not tiles:
        raise MfpiError("give at least one tile size")
    for t in tiles:
        if t <= 0 or t % stride:
            near = sorted({max(stride, t // stride * stride), -(-max(t, 1) // stride) * stride})
            raise InputShapeError(
                f"tile size {t} is not a positive multiple of the network's stride {stride} "
                f"(use {' or '.join(map(str, near))})"
            )


def make_profiles(
    tiles: tuple[int, ...] | list[int], batches: tuple[int, ...] | list[int], stride: int
) -> tuple[TileProfile, ...]:
    """One profile per tile size; together they cover every side from `stride` to the largest tile.

    Profile i takes sides (tile[i-1], tile[i]] (the first from `stride`), optimised for tile[i]
    and the largest batch size; batches from 1 to the largest are accepted.
    """
    validate_tiles(tiles, stride)
    top = max(batches)
    out = []
    lower = stride
    for t in sorted(set(tiles)):
        out.append(TileProfile(opt_tile=t, min_tile=lower, max_tile=t, opt_batch=top, max_batch=top))
        lower = t + stride
    return tuple(out)


def pick_profile(profiles: tuple[TileProfile, ...], height: int, width: int, batch: int) -> int:
    """Index of the first profile that accepts the batch (raises InputShapeError if none)."""
    for i, p in enumerate(profiles):
        if p.accepts(height, width, batch):
            return i
    raise InputShapeError(
        f"tile {height}x{width} batch {batch} fits none of the engine's profiles "
        + ", ".join(f"{p.min_tile}-{p.max_tile}px x{p.max_batch}" for p in profiles)
    )


@dataclass(frozen=True)
class ProfileShapes:
    """min/opt/max shapes of one input for one optimisation profile."""

    name: str
    min: Shape
    opt: Shape
    max: Shape


def profile_shapes(
    spec: EngineSpec, profile: TileProfile, input_names: tuple[str, ...] = ("tiles", "dpm")
) -> list[ProfileShapes]:
    """The shapes `IOptimizationProfile.set_shape` takes for each network input."""
    c = spec.channels
    lo, hi = profile.min_tile or spec.stride, profile.max_tile or profile.opt_tile
    top = profile.max_batch or profile.opt_batch
    shapes = [
        ProfileShapes(
            input_names[0], (1, lo, lo, c), (profile.opt_batch, profile.opt_tile, profile.opt_tile, c), (top, hi, hi, c)
        )
    ]
    if spec.needs_dpm:
        shapes.append(ProfileShapes(input_names[1], (1,), (profile.opt_batch,), (top,)))
    return shapes


def output_shape(spec: EngineSpec, batch: int, height: int, width: int) -> Shape:
    """Shape of the graph's output tensor (Deep-Z's graph has no plane axis)."""
    full = spec.output_shape(batch, height, width)
    return (full[0],) + full[2:] if spec.needs_dpm else full


def buffer_bytes(spec: EngineSpec, profiles: tuple[TileProfile, ...]) -> dict[str, int]:
    """Bytes to allocate per tensor so any batch any profile accepts fits (uint8 I/O, float32 DPM)."""
    top_b = max(p.max_batch or p.opt_batch for p in profiles)
    top_t = max(p.max_tile or p.opt_tile for p in profiles)
    sizes = {
        "tiles": int(np.prod((top_b, top_t, top_t, spec.channels))),
        "planes": int(np.prod(output_shape(spec, top_b, top_t, top_t))),
    }
    if spec.needs_dpm:
        sizes["dpm"] = 4 * top_b
    return sizes


def engine_target_key(gpu_name: str, compute_capability: str, tensorrt_version: str) -> str:
    """A readable key naming what an engine binary is tied to (e.g. for caches of engines)."""
    safe = "".join(ch if ch.isalnum() else "-" for ch in gpu_name).strip("-").lower()
    return f"{safe}_sm{compute_capability.replace('.', '')}_trt{tensorrt_version}"


def io_shapes(spec: EngineSpec, batch: int, height: int, width: int) -> dict[str, Shape]:
    """Shapes of the graph's tensors for one batch: what set_input_shape and the copies use."""
    shapes: dict[str, Shape] = {
        "tiles": (batch, height, width, spec.channels),
        "planes": output_shape(spec, batch, height, width),
    }
    if spec.needs_dpm:
        shapes["dpm"] = (batch,)
    return shapes
