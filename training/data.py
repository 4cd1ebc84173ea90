"""Training data: stacks + plane selection + patch positions -> (degraded input, target stack) batches."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mfpi_deploy.degrade import Degradation, degrade_tensor
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.tiling import Box
from training.patches import (
    CELL,
    Foreground,
    Region,
    candidate_patches,
    fit_sizes,
    split_blocks,
    validation_patches,
)
from training.planes import PlaneSelection, select_planes
from training.stack import FocalStack, IntensityRule, open_stack

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def to_grey(x: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> uint8 (..., 1) by ITU-R 601 luma; (..., 1) is returned unchanged."""
    if x.shape[-1] == 1:
        return x
    return np.clip(np.rint(x.astype(np.float32) @ LUMA), 0, 255).astype(np.uint8)[..., None]


def parse_rect(text: str | None, height: int, width: int) -> Box:
    """`y0:y1,x0:x1` in pixels or as fractions of the size (e.g. `0:1,0:0.75`); empty = everything.

    Open ends are allowed (`:,:768`). Fractions are any value with a decimal point or 0/1
    written as floats; integers are pixels.
    """
    if not text:
        return Box(0, 0, height, width)
    try:
        ys, xs = text.split(",")
        bounds = []
        for part, size in ((ys, height), (xs, width)):
            lo, hi = part.split(":")
            vals = []
            for v, default in ((lo, 0), (hi, size)):
                v = v.strip()
                if not v:
                    vals.append(default)
                elif "." in v:
                    vals.append(int(round(float(v) * size)))
                else:
                    vals.append(int(v))
            bounds.append(vals)
    except ValueError:
        raise MfpiError(f"region {text!r}: expected y0:y1,x0:x1 in pixels or fractions (e.g. 0:1.0,0:0.75)") from None
    (y0, y1), (x0, x1) = bounds
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise MfpiError(f"region {text!r} is empty or outside the image ({height}x{width})")
    return Box(y0, x0, y1, x1)


@dataclass
class Source:
    """One training stack: the stack, its plane selection, its region, and an optional in-memory copy."""

    stack: FocalStack
    selection: PlaneSelection
    rect: Box
    grey: bool = False
    cache: np.ndarray | None = field(default=None, repr=False)  # uint8 (Z, h, w, C) of rect

    def load_cache(self, limit_mb: float) -> None:
        """Keep the selected planes of the region in memory when they fit in `limit_mb`."""
        r = self.rect
        size = len(self.selection.target) * r.height * r.width * self.stack.channels / 1e6
        if size <= limit_mb:
            data = self.stack.read(self.selection.target, r)
            self.cache = to_grey(data) if self.grey else data

    def read(self, planes: list[int] | tuple[int, ...], rect: Box) -> np.ndarray:
        """uint8 (len(planes), h, w, C') of selected-plane positions `planes` (indices into target)."""
        if self.cache is not None:
            r = self.rect
            return self.cache[list(planes), rect.y0 - r.y0 : rect.y1 - r.y0, rect.x0 - r.x0 : rect.x1 - r.x0]
        data = self.stack.read([self.selection.target[p] for p in planes], rect)
        return to_grey(data) if self.grey else data

    def target(self, rect: Box) -> np.ndarray:
        return self.read(range(len(self.selection.target)), rect)

    def input_plane(self, rect: Box) -> np.ndarray:
        return self.read([self.selection.centre_index], rect)[0]


def open_sources(
    specs: list[list[str]],
    *,
    planes: int,
    focus: str,
    z_step_um: float | None,
    region: str | None,
    grey: bool,
    rule: IntensityRule | str,
    cache_mb: float,
) -> list[Source]:
    """Open each stack and select its planes; all must agree on plane count and channels."""
    sources = []
    for paths in specs:
        stack = open_stack(paths, rule=rule)
        rect = parse_rect(region, stack.height, stack.width)
        sel = select_planes(stack, planes=planes, focus=focus, z_step_um=z_step_um)
        src = Source(stack, sel, rect, grey=grey and stack.channels == 3)
        src.load_cache(cache_mb)
        sources.append(src)
    chans = {1 if s.grey else s.stack.channels for s in sources}
    if len(chans) > 1:
        raise MfpiError("training stacks mix grey and RGB; pass --grey to train all as grey")
    return sources


def source_channels(sources: list[Source]) -> int:
    s = sources[0]
    return 1 if s.grey else s.stack.channels


def region_candidates(
    sources: list[Source], regions: list[Region], patch: int, fg: Foreground
) -> list[tuple[int, Box]]:
    """All foreground patch positions inside the given blocks, tagged with their source index."""
    out: list[tuple[int, Box]] = []
    for reg in regions:
        plane = sources[reg.source].input_plane(reg.rect)
        out.extend((reg.source, r) for r in candidate_patches(reg, plane, patch, fg))
    return out


def split_sources(
    sources: list[Source], block: int, val_fraction: float, seed: int
) -> tuple[list[Region], list[Region]]:
    """Train and validation blocks of every source (see `patches.split_blocks`)."""
    train, val = [], []
    for i, s in enumerate(sources):
        t, v = split_blocks(s.rect, block, val_fraction, seed, source=i)
        train += t
        val += v
    return train, val


def augment(patch: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of (Z, H, W, C) patches (code 0..7); z order is unchanged."""
    if code & 1:
        patch = patch[:, ::-1]
    if code & 2:
        patch = patch[:, :, ::-1]
    if code & 4:
        patch = patch.transpose(0, 2, 1, 3)
    return patch


def make_batch(targets: list[np.ndarray], centre: int, degradation: Degradation) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 target stacks (Z, H, W, C) -> input (N, C, H/s, W/s) degraded centre plane, target (N, Z*C, H, W)."""
    y = torch.from_numpy(np.ascontiguousarray(np.stack(targets))).float().div_(255.0)  # N Z H W C
    n, z, h, w, c = y.shape
    y = y.permute(0, 1, 4, 2, 3).reshape(n, z * c, h, w)  # plane-major channels
    x = degrade_tensor(y[:, centre * c : (centre + 1) * c], degradation)
    return torch.round(x * 255) / 255, y  # the input is 8-bit, as it will be in use


def check_patch(patch: int, scale: int) -> None:
    step = 8 * scale  # the network needs inputs that are multiples of 8
    if patch % step or patch % CELL:
        raise MfpiError(f"patch size {patch} must be a multiple of {step} (network stride 8 x scale {scale})")


@dataclass(frozen=True)
class DataInfo:
    """What the model card records about the training data."""

    planes_um: list[float]
    offsets_in_steps: bool
    input_pixel_size_um: float | None
    description: str


@dataclass
class TrainingData:
    """Everything the loop draws from: stacks, patch positions, validation patches, chosen sizes."""

    sources: list[Source]
    channels: int
    patch: int
    block: int
    train: list[tuple[int, Box]]  # foreground patch positions for training
    val: list[tuple[int, Box]]  # the validation patches (fixed for the run)
    train_blocks: int
    val_blocks: int

    @property
    def centre(self) -> int:
        return self.sources[0].selection.centre_index

    def info(self, scale: int) -> DataInfo:
        first = self.sources[0]
        pix = first.stack.pixel_size_um
        return DataInfo(
            list(first.selection.offsets_um),
            first.selection.offsets_in_steps,
            round(pix * scale, 6) if pix else None,
            "; ".join(s.stack.name for s in self.sources),
        )

    def batch(
        self, patches: list[tuple[int, Box]], codes, degradation: Degradation
    ) -> tuple[torch.Tensor, torch.Tensor]:
        targets = [augment(self.sources[s].target(r), int(c)) for (s, r), c in zip(patches, codes)]
        return make_batch(targets, self.centre, degradation)


def prepare_data(
    specs: list[list[str]],
    *,
    planes: int,
    focus: str,
    z_step_um: float | None,
    region: str | None,
    grey: bool,
    rule: str,
    cache_mb: float,
    patch: int | None,
    block: int | None,
    val_fraction: float,
    val_patches: int | None,
    foreground: Foreground,
    scale: int,
    seed: int,
) -> TrainingData:
    """Open the stacks, fit patch and block sizes to their regions, and find the patch positions."""
    if not specs:
        raise MfpiError("no training data given (--data)")
    sources = open_sources(
        specs, planes=planes, focus=focus, z_step_um=z_step_um, region=region, grey=grey, rule=rule, cache_mb=cache_mb
    )
    patch, block = fit_sizes([(s.rect.height, s.rect.width) for s in sources], patch, block, val_fraction)
    check_patch(patch, scale)
    train_blocks, val_blocks = split_sources(sources, block, val_fraction, seed)
    train = region_candidates(sources, train_blocks, patch, foreground)
    if not train:
        raise MfpiError(
            f"no training patch of {patch} px passes the foreground test (8x8 cells with a std of at "
            f"least {foreground.min_std} levels on {foreground.min_fraction:.0%} of a patch): lower "
            f"--fg-min-std / --fg-min-fraction, or check that the region holds cells"
        )
    val_candidates = region_candidates(sources, val_blocks, patch, foreground) if val_blocks else []
    val = validation_patches(val_candidates, len(val_blocks) * block * block, patch, val_patches)
    return TrainingData(sources, source_channels(sources), patch, block, train, val, len(train_blocks), len(val_blocks))
