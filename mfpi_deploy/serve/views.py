"""What a served slide's pixels come from: the input slide (its own pyramid levels where it has
them), the engine (live planes: engine tiles of `mfpi-run`'s plan, computed through
`infer.stream_tiles`), or a finished `mfpi-run` output (its stored pyramid, no engine).

Every view answers `region(downsample, box)`-style reads in the coordinates of one Deep Zoom
level; the geometry of levels is `dzi.DziGeometry`, the engine-tile arithmetic `mapping`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.infer.stream import stream_tiles
from mfpi_deploy.output.reader import StackReader
from mfpi_deploy.run.plan import PlannedRun
from mfpi_deploy.serve.dzi import full_resolution_box
from mfpi_deploy.serve.mapping import assemble, engine_tiles_over, reduce
from mfpi_deploy.serve.staging import Stage
from mfpi_deploy.slide import Slide, TileSource, open_slide, pixel_rule
from mfpi_deploy.tiling import Box, Tile

BAND_PIXELS = 1 << 24  # raw pixels an input read holds at once (coarse tiles of slides without a pyramid)
MAX_TILES_PER_REQUEST = 16  # engine tiles one DZI tile may ask to compute (lower levels: more falls back to the input)


def _fit(block: np.ndarray, height: int, width: int) -> np.ndarray:
    """`block` cut or edge-padded to height x width (a reader's level may be a pixel short: floor vs ceil)."""
    block = block[:height, :width]
    ph, pw = height - block.shape[0], width - block.shape[1]
    if ph or pw:
        block = np.pad(block, ((0, ph), (0, pw)) + ((0, 0),) * (block.ndim - 2), mode="edge")
    return block


class InputView:
    """The input slide for display, uint8 (h, w, grey or RGB), from the slide's own pyramid levels
    where they are exact powers of two, else from the nearest finer one by 2x2 means."""

    def __init__(self, path: Path, series: int = 0, plane: int | str | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._levels: dict[int, Slide] = {}  # downsample -> opened level
        base = open_slide(path, 0, series=series, plane=plane)
        self._levels[1] = base
        info = base.info
        self.height, self.width = info.height, info.width
        self.pixel_size_um = info.pixel_size_um
        self.plane = info.plane  # the z plane shown of a Z-stack ("sharpest" resolved), None for 2D
        colour = 3 if info.samples >= 3 else 1
        self.channels = colour
        self.rule = pixel_rule(info.dtype, info.samples, colour, max_value=info.max_value, where=str(path))
        for level in range(1, info.levels):
            try:
                slide = open_slide(path, level, series=series, plane=info.plane)
            except MfpiError:
                continue
            ratio = self.width / slide.info.width
            d = 2 ** round(math.log2(ratio)) if ratio > 1 else 0
            if d > 1 and abs(ratio - d) <= 0.05 * d and d not in self._levels:
                self._levels[d] = slide
            else:
                slide.close()

    @property
    def stored_downsamples(self) -> list[int]:
        return sorted(self._levels)

    def region(self, downsample: int, box: Box) -> np.ndarray:
        """Pixels of `box` in a level `downsample` (a power of two) times smaller than the slide.

        Read from the finest stored level that divides it, in bands of rows, so a coarse tile of
        a slide without a pyramid costs time but not memory (at most BAND_PIXELS raw pixels at once)."""
        d = max(k for k in self._levels if k <= downsample and downsample % k == 0)
        step = downsample // d
        slide = self._levels[d]
        info = slide.info
        x0, x1 = box.x0 * step, min(box.x1 * step, info.width)
        y_end = min(box.y1 * step, info.height)
        rows = max(step, (BAND_PIXELS // max(1, x1 - x0)) // step * step)
        bands = []
        for y0 in range(box.y0 * step, y_end, rows):
            with self._lock:
                raw = slide.read(y0, min(y0 + rows, y_end), x0, x1)
            bands.append(reduce(self.rule.apply(raw)[None], step)[0])
        return _fit(np.concatenate(bands), box.height, box.width)

    def close(self) -> None:
        for slide in self._levels.values():
            slide.close()
        self._levels.clear()


class LivePlanes:
    """The refocused planes computed on request: engine tiles of the run's plan through `stream_tiles`.

    `needs` says which engine tiles a DZI tile takes (None: this level is not computed, the
    caller shows the input instead); `region` assembles them. `compute` is what the compute
    queue calls with a batch of engine tile indices.
    """

    def __init__(
        self,
        run: PlannedRun,
        source: TileSource,
        backend: Backend,
        *,
        compute_levels: int,
        cached: Callable[[int], bool],
        stage: Stage | None = None,
    ) -> None:
        self.run, self.source, self.backend = run, source, backend
        self.plan = run.plan
        self.scale = backend.spec.scale
        self.planes = backend.spec.planes
        self.channels = backend.spec.channels
        self.height, self.width = self.scale * self.plan.height, self.scale * self.plan.width
        self.compute_levels = compute_levels
        self.stage = stage
        self.cached = cached if stage is None else lambda index: cached(index) or stage.has(index)

    def needs(self, downsample: int, box: Box) -> list[int] | None:
        """Engine tiles behind `box` of a level `downsample` times smaller than full resolution,
        or None if they are not to be computed for it (levels below the computed ones, unless all
        are already computed; more than MAX_TILES_PER_REQUEST below full resolution: full
        resolution is always computed, whatever the engine tile size)."""
        indices = engine_tiles_over(self.plan, self.scale, self._full(downsample, box))
        if downsample == 1 or (downsample < 2**self.compute_levels and len(indices) <= MAX_TILES_PER_REQUEST):
            return indices
        return indices if all(self.cached(i) for i in indices) else None

    def region(self, downsample: int, box: Box, planes: Sequence[int], cores: Mapping[int, np.ndarray]) -> np.ndarray:
        """(len(planes), h, w, C) of `box` at that level, from the engine tiles' cores."""
        block = assemble(self.plan, self.scale, self._full(downsample, box), cores, list(planes))
        return _fit_planes(reduce(block, downsample), box)

    def _full(self, downsample: int, box: Box) -> Box:
        return full_resolution_box(box, downsample, self.height, self.width)

    def warm_up(self) -> float:
        """Run one batch of the plan's window shape (zeros) through the engine, so compiling that
        shape (OpenVINO, TensorRT contexts) and first-call allocations happen before a viewer asks;
        seconds it took. Nothing is cached: the batch is not a tile of the slide."""
        side = self.plan.tile
        zeros = np.zeros((len(self.run.groups[0]), side, side, self.channels), np.uint8)
        started = time.perf_counter()
        self.backend.run(zeros)
        return time.perf_counter() - started

    def staged(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """Cores of `indices` (and their batch-mates) read from the disk stage, no engine; {} without one."""
        return {} if self.stage is None else self.stage.read(indices)

    def compute(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """The cores (planes, h, w, C) of engine tiles `indices` and of the other tiles of their
        batches: `mfpi-run`'s tile loop over the run's own fixed batches, so every value equals
        what `mfpi-run` writes (an engine's float results can depend on the batch a tile is in).
        With a disk stage they are also written to `mfpi-run`'s partial run (if it is ours to write)."""
        groups = self.run.groups
        batch = self.run.batch
        todo = sorted({i // batch for i in indices})
        found: dict[int, np.ndarray] = {}

        def write(tile: Tile, planes: np.ndarray) -> None:
            found[tile.index] = np.array(planes, copy=True)  # the core only, not the whole batch

        if self.stage is None or not self.stage.compute(self.source, self.backend, todo, write):
            stream_tiles(self.source, self.plan, groups, todo, self.backend, write)
        for b in todo:
            for index in groups[b]:
                yield index, found[index]


def _fit_planes(block: np.ndarray, box: Box) -> np.ndarray:
    """(Z, h, w, C) cut or padded to the box's size."""
    return np.stack([_fit(p, box.height, box.width) for p in block])


class StoredPlanes(StackReader):
    """A finished `mfpi-run` output (OME-Zarr or OME-TIFF), read from its stored pyramid
    (opened, checked and read by `output.reader.StackReader`; one read at a time)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._lock = threading.Lock()

    def region(self, downsample: int, box: Box, planes: Sequence[int]) -> np.ndarray:
        """(len(planes), h, w, C) of `box` at a level `downsample` times smaller than full resolution."""
        k = int(math.log2(downsample))
        stored = min(k, self.levels - 1)
        step = 2 ** (k - stored)
        src = Box(box.y0 * step, box.x0 * step, box.y1 * step, box.x1 * step)
        with self._lock:
            out = [self.read(z, src, level=stored) for z in planes]
        return _fit_planes(reduce(np.stack(out), step), box)
