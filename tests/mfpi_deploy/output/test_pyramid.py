from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.output.pyramid import PyramidBuilder, PyramidGrid, _npy, downsample2, level_shapes, tile_side
from mfpi_deploy.tiling import Box


class MemorySink:
    """Collects what the builder puts, per level, and counts how often each pixel is written."""

    def __init__(self, grid: PyramidGrid, planes: int, channels: int) -> None:
        self.levels = [np.zeros((planes, h, w, channels), np.uint8) for h, w in grid.shapes]
        self.writes = [np.zeros((h, w), np.int32) for h, w in grid.shapes]
        self.grid = grid

    def _put(self, level: int, box: Box, planes: np.ndarray) -> None:
        assert planes.shape[1:3] == (box.height, box.width)
        self.levels[level][:, box.y0 : box.y1, box.x0 : box.x1] = planes
        self.writes[level][box.y0 : box.y1, box.x0 : box.x1] += 1

    def put_engine_tile(self, index: int, blocks: list) -> None:
        for level, box, planes in blocks:
            self._put(level, box, planes)

    def put_tile(self, level: int, row: int, col: int, planes: np.ndarray) -> None:
        self._put(level, self.grid.tile_box(level, row, col), planes)


def reference_pyramid(level0: np.ndarray, shapes: tuple) -> list[np.ndarray]:
    """The pyramid made level by level from whole levels (what a pass after the last tile made)."""
    levels = [level0]
    for _ in shapes[1:]:
        levels.append(downsample2(levels[-1]))
    return levels


def test_downsample2_rounds_and_repeats_odd_edges() -> None:
    block = np.array([[[0, 1, 9], [2, 2, 9]]], np.uint8)[..., None]  # (1, 2, 3, 1)
    assert downsample2(block)[..., 0].tolist() == [[[1, 9]]]


@pytest.mark.parametrize("shape", [(2, 7, 9, 3), (1, 300, 521, 1), (3, 33, 64, 3), (1, 1, 1, 1), (2, 5, 1, 3)])
def test_downsample2_is_the_2x2_mean_of_the_edge_padded_block(shape: tuple) -> None:
    block = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    h, w = shape[1:3]
    padded = np.pad(block, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)], mode="edge").astype(np.uint16)
    total = padded[:, 0::2, 0::2] + padded[:, 1::2, 0::2] + padded[:, 0::2, 1::2] + padded[:, 1::2, 1::2]
    assert np.array_equal(downsample2(block), ((total + 2) // 4).astype(np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_downsample2_of_a_strided_core_into_a_quadrant_view(channels: int) -> None:
    """The per-plane path (strided rows) and a view as `out` give the stacked path's values, in place."""
    whole = np.random.default_rng(1).integers(0, 256, (3, 41, 50, channels), dtype=np.uint8)
    core = whole[:, 4:37, 6:46]  # 33 x 40, rows strided: not contiguous
    canvas = np.zeros((3, 40, 40, channels), np.uint8)
    returned = downsample2(core, out=canvas[:, 5:22, 10:30])
    assert np.shares_memory(returned, canvas)
    assert np.array_equal(canvas[:, 5:22, 10:30], downsample2(np.ascontiguousarray(core)))
    canvas[:, 5:22, 10:30] = 0
    assert not canvas.any()  # nothing written outside the quadrant
    with pytest.raises(ValueError, match="writes"):
        downsample2(core, out=canvas[:, :16, :20])


def test_tile_side_is_the_largest_power_of_two_dividing_the_core() -> None:
    assert [tile_side(c) for c in (1024, 768, 256, 1184, 96)] == [512, 256, 256, 32, 32]


def test_levels_stop_at_256() -> None:
    assert level_shapes(300, 520) == ((300, 520), (150, 260), (75, 130))
    assert level_shapes(200, 100) == ((200, 100),)


@pytest.mark.parametrize(
    "core,tile,direct",
    [(1024, 512, 1), (1024, 256, 2), (768, 256, 0), (512, 512, 0), (2048, 256, 3)],
)
def test_direct_levels_are_those_an_engine_tile_fills_with_whole_tiles(core: int, tile: int, direct: int) -> None:
    grid = PyramidGrid(level_shapes(20000, 20000), core, tile)
    assert grid.direct == direct
    for level in range(direct + 1):
        box = grid.engine_block(1, 2, level)
        assert box.y0 % tile == 0 and box.height % tile == 0 and box.width % tile == 0


@pytest.mark.parametrize(
    "height,width,core,tile",
    [
        (1500, 1300, 512, 256),  # direct 1, odd edges further up
        (1100, 2100, 384, 128),  # core 3 tiles: level 1 tiles straddle engine tiles
        (900, 700, 256, 256),  # direct 0
        (600, 520, 128, 16),  # many small tiles, many levels above direct
    ],
)
@pytest.mark.parametrize("incremental", [True, False])
def test_builder_gives_the_pyramid_of_the_whole_level(
    tmp_path: Path, height: int, width: int, core: int, tile: int, incremental: bool
) -> None:
    rng = np.random.default_rng(0)
    level0 = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    grid = PyramidGrid(level_shapes(height, width), core, tile)
    sink = MemorySink(grid, 2, 3)
    builder = PyramidBuilder(grid, tmp_path / "pyr", sink)
    order = [(r, c) for r in range(grid.engine_rows) for c in range(grid.engine_cols)]
    rng.shuffle(order)  # engine tiles finish in any order (several writers, resumes, Dask regions)
    for r, c in order:
        box = grid.engine_block(r, c, 0)
        builder.add_engine_tile(r, c, level0[:, box.y0 : box.y1, box.x0 : box.x1], build=incremental)
    if incremental:  # every upper tile was built as soon as its last input arrived
        assert all((w == 1).all() for w in sink.writes)
    builder.complete()
    for level, (got, want) in enumerate(zip(sink.levels, reference_pyramid(level0, grid.shapes))):
        assert np.array_equal(got, want), f"level {level}"
        assert (sink.writes[level] == 1).all(), f"level {level}: every pixel written exactly once"
    kept = sorted(p.relative_to(tmp_path / "pyr").as_posix() for p in (tmp_path / "pyr").rglob("*.npy"))
    top = grid.levels - 1
    assert all(k.startswith(f"{top}/") for k in kept)  # only the top level's lossless tiles remain


def test_complete_builds_what_a_killed_run_left_and_nothing_twice(tmp_path: Path) -> None:
    """A run killed after some engine tiles (their pieces kept on disk) and resumed by a new
    builder, with one tile computed again: the same pyramid, no tile put twice but the redone one."""
    rng = np.random.default_rng(1)
    level0 = rng.integers(0, 256, (1, 1400, 1400, 1), dtype=np.uint8)
    grid = PyramidGrid(level_shapes(1400, 1400), 256, 256)
    first = MemorySink(grid, 1, 1)
    tiles = [(r, c) for r in range(grid.engine_rows) for c in range(grid.engine_cols)]

    def add(builder: PyramidBuilder, r: int, c: int) -> None:
        box = grid.engine_block(r, c, 0)
        builder.add_engine_tile(r, c, level0[:, box.y0 : box.y1, box.x0 : box.x1])

    b1 = PyramidBuilder(grid, tmp_path / "pyr", first)
    for r, c in tiles[:20]:
        add(b1, r, c)
    second = MemorySink(grid, 1, 1)
    b2 = PyramidBuilder(grid, tmp_path / "pyr", second)  # the resumed run: same folder, fresh process
    for r, c in tiles[19:]:  # tile 19 was computed but not journaled: it runs again
        add(b2, r, c)
    b2.complete()
    want = reference_pyramid(level0, grid.shapes)
    for level in range(1, grid.levels):
        done = (first.writes[level] > 0) | (second.writes[level] > 0)
        assert done.all(), f"level {level}"
        merged = np.where((second.writes[level] > 0)[None, ..., None], second.levels[level], first.levels[level])
        assert np.array_equal(merged, want[level]), f"level {level}"
        assert (first.writes[level] + second.writes[level] == 1).all()


def test_writers_build_upper_tiles_at_the_same_time_and_each_once(tmp_path: Path) -> None:
    """Upper tiles are claimed under the builder's lock but encoded outside it: two writers that
    each complete an upper tile are inside the sink together (a barrier both must reach), and with
    many writers adding tiles in any order every upper tile is still made exactly once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    grid = PyramidGrid(level_shapes(1024, 1024), 256, 256)  # 4x4 engine tiles; level 1: 2x2 tiles
    assert grid.direct == 0 and grid.levels == 3
    rng = np.random.default_rng(2)
    level0 = rng.integers(0, 256, (1, 1024, 1024, 1), dtype=np.uint8)
    together = threading.Barrier(2, timeout=10)

    class MeetingSink(MemorySink):
        def put_tile(self, level: int, row: int, col: int, planes: np.ndarray) -> None:
            if level == 1 and row == 0:  # (0, 0) and (0, 1): one writer each, below
                together.wait()  # BrokenBarrierError if the other writer cannot get in meanwhile
            super().put_tile(level, row, col, planes)

    sink = MeetingSink(grid, 1, 1)
    builder = PyramidBuilder(grid, tmp_path / "pyr", sink)

    def add(tiles: list[tuple[int, int]]) -> None:
        for r, c in tiles:
            box = grid.engine_block(r, c, 0)
            builder.add_engine_tile(r, c, level0[:, box.y0 : box.y1, box.x0 : box.x1])

    left = [(r, c) for r in (0, 1) for c in (0, 1)]  # the engine tiles under level-1 tile (0, 0)
    right = [(r, c) for r in (0, 1) for c in (2, 3)]  # and under (0, 1)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(add, [left, right]))
    rest = [(r, c) for r in (2, 3) for c in range(4)]
    rng.shuffle(rest)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, [rest[i::4] for i in range(4)]))
    for level, (got, want) in enumerate(zip(sink.levels, reference_pyramid(level0, grid.shapes))):
        assert np.array_equal(got, want), f"level {level}"
        assert (sink.writes[level] == 1).all(), f"level {level}: every pixel written exactly once"


def test_staged_pieces_are_the_bytes_np_save_writes() -> None:
    import io

    strided = np.arange(3 * 8 * 10 * 3, dtype=np.uint8).reshape(3, 8, 10, 3)[:, 1:7, 2:9]
    buf = io.BytesIO()
    np.save(buf, strided, allow_pickle=False)
    assert b"".join(bytes(part) for part in _npy(strided)) == buf.getvalue()
